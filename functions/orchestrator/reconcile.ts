import {
  DescribeLifecycleHooksCommand,
  type Instance,
  paginateDescribeAutoScalingGroups,
  paginateDescribeWarmPool,
} from '@aws-sdk/client-auto-scaling';
import { fromCommandParameters } from '../shared/document-contract';
import { ReconcileError } from '../shared/errors';
import { isTerminalStatus } from '../shared/event-patterns';
import { MetricName } from '../shared/metric-names';
import { type ListedCommand, selfDeployCommands } from './commands';
import { finishCommand } from './completion';
import { type GroupConfig, managedGroup } from './config';
import {
  isForWait,
  type Place,
  placeOfComment,
  placeOfWait,
  readMetadata,
  warmPoolDecision,
} from './decisions';
import { noDeployHolds, startDeploy } from './deploy-start';
import type { Deps } from './deps';
import { completeAction, heartbeat, type LifecycleAction } from './lifecycle';
import { type ReleaseReconcile, reconcileReleases } from './release-reconcile';
import { chunk, mapLimited } from './utilities';
import { type LaunchScan, MAX_ACTIVITY_PAGES, scanLaunches, sentDuringCurrentWait } from './wait-start';

/** Instances looked at in parallel; bounded so a big fleet does not burst the APIs. */
const CONCURRENCY = 10;
/** DescribeAutoScalingGroups takes at most this many names per call. */
const GROUP_NAMES_PER_CALL = 100;

/** What the reconciler did with one waiting instance. */
export type InstanceReconcile =
  | 'deploy-started'
  | 'completed'
  | 'continued-without-deploy'
  | 'abandoned'
  | 'heartbeat'
  | 'agent-not-ready'
  | 'send-refused'
  | 'deploy-overdue'
  | 'action-ended'
  /** Younger than the queue's own watch over it (leftToQueueSeconds): not looked at. */
  | 'left-to-queue'
  /** Handling it failed (the error is logged); the run ends with an error naming it. */
  | 'failed';

/** Outcomes that leave an instance waiting with nothing moving it forward. */
const STUCK: ReadonlySet<InstanceReconcile> = new Set([
  'agent-not-ready',
  'send-refused',
  'deploy-overdue',
  'failed',
]);

export interface ReconcileSummary {
  readonly groups: Record<
    string,
    { waiting: number; stuck: number; instances: Record<string, InstanceReconcile> }
  >;
  /** Per group: the deployment moved on, or drifted instances sent the release. */
  releases?: Record<string, ReleaseReconcile>;
}

/** An instance a launch hook holds, narrowed once from Auto Scaling's description of it. */
interface WaitingInstance {
  readonly instanceId: string;
  /** Where the wait leads. */
  readonly place: Place;
  /** The lifecycle state as Auto Scaling names it, for the logs. */
  readonly state: string;
}

/** The waiting instance `instance` is, or undefined when no launch hook holds it. */
function waitingInstance(instance: Instance): WaitingInstance | undefined {
  const { InstanceId: instanceId, LifecycleState: state } = instance;
  const place = placeOfWait(state);
  return instanceId && state && place ? { instanceId, place, state } : undefined;
}

/** One managed group in one run: what is read about it is read once, and only when needed. */
interface GroupRun {
  readonly name: string;
  readonly group: GroupConfig;
  /** Launch activities of the group's waiting instances. */
  readonly launches: () => Promise<LaunchScan>;
  /** The hook's NotificationMetadata, as the launch event would have carried it. */
  readonly metadata: () => Promise<string | undefined>;
}

/**
 * Repairs what lost events leave behind, for every instance a launch hook still holds:
 * no command for its current wait → start one (lost launch event); command finished →
 * complete (lost status event); command running → heartbeat. Each instance is handled on
 * its own: one that fails is logged and counted as stuck, and the run ends with an error
 * naming it (for the Errors alarm) only after every other instance was handled and
 * StuckInstances was published per group, zeros included, so the alarm always has data.
 */
export async function reconcile(deps: Deps): Promise<ReconcileSummary> {
  const names = Object.keys(deps.config.groups);
  const waiting: { run: GroupRun; instance: WaitingInstance }[] = [];
  const failures: string[] = [];
  for (const batch of chunk(names, GROUP_NAMES_PER_CALL)) {
    const pages = paginateDescribeAutoScalingGroups(
      { client: deps.clients.autoScaling },
      { AutoScalingGroupNames: batch },
    );
    for await (const page of pages) {
      for (const found of page.AutoScalingGroups ?? []) {
        const name = found.AutoScalingGroupName ?? '';
        const group = managedGroup(deps.config, name);
        if (!group) continue;
        const instances = [...(found.Instances ?? [])];
        // Warm-pool instances are not among the group's instances; only DescribeWarmPool lists them.
        if (found.WarmPoolConfiguration) {
          try {
            instances.push(...(await warmPoolInstances(deps, name)));
          } catch (error) {
            failures.push(`${name}'s warm pool (${describeError(error)})`);
            deps.logger.error('reconcile could not list a warm pool', { group: name, ...errorKeys(error) });
          }
        }
        const held = instances.flatMap((instance) => waitingInstance(instance) ?? []);
        const run = groupRun(
          deps,
          name,
          group,
          held.map((instance) => instance.instanceId),
        );
        for (const instance of held) waiting.push({ run, instance });
      }
    }
  }

  const outcomes = await mapLimited(
    waiting,
    CONCURRENCY,
    async ({ run, instance }): Promise<InstanceReconcile> => {
      try {
        return await reconcileInstance(deps, run, instance);
      } catch (error) {
        failures.push(`${instance.instanceId} (${run.name}: ${describeError(error)})`);
        deps.logger.error('reconcile could not handle a waiting instance', {
          instanceId: instance.instanceId,
          group: run.name,
          state: instance.state,
          ...errorKeys(error),
        });
        return 'failed';
      }
    },
  );

  const summary: ReconcileSummary = {
    groups: Object.fromEntries(names.map((name) => [name, { waiting: 0, stuck: 0, instances: {} }])),
  };
  waiting.forEach(({ run, instance }, index) => {
    const entry = summary.groups[run.name];
    const outcome = outcomes[index];
    if (!entry || !outcome) return;
    entry.waiting += 1;
    entry.instances[instance.instanceId] = outcome;
    if (STUCK.has(outcome)) entry.stuck += 1;
  });
  for (const [name, entry] of Object.entries(summary.groups)) {
    deps.metrics.record(MetricName.StuckInstances, name, entry.stuck);
  }
  summary.releases = await reconcileReleases(deps, (group, error) => {
    failures.push(`${group}'s release (${describeError(error)})`);
    deps.logger.error('reconcile could not handle a release', { group, ...errorKeys(error) });
  });
  deps.logger.info('reconcile finished', { summary });
  if (failures.length > 0) {
    throw new ReconcileError(`reconcile could not handle ${failures.join(', ')}`);
  }
  return summary;
}

function groupRun(deps: Deps, name: string, group: GroupConfig, waitingIds: readonly string[]): GroupRun {
  return {
    name,
    group,
    launches: once(() => scanLaunches(deps, name, waitingIds)),
    metadata: once(async () => {
      const output = await deps.clients.autoScaling.send(
        new DescribeLifecycleHooksCommand({
          AutoScalingGroupName: name,
          LifecycleHookNames: [group.lifecycleHookName],
        }),
      );
      const hook = output.LifecycleHooks?.[0];
      if (!hook) throw new Error(`group ${name} has no lifecycle hook ${group.lifecycleHookName}`);
      return hook.NotificationMetadata;
    }),
  };
}

/** Calls `read` at most once; every caller shares its answer (or its error). */
function once<T>(read: () => Promise<T>): () => Promise<T> {
  let answer: Promise<T> | undefined;
  return () => {
    answer ??= read();
    return answer;
  };
}

function errorKeys(error: unknown) {
  return error instanceof Error
    ? { errorName: error.name, errorMessage: error.message }
    : { errorName: 'unknown', errorMessage: String(error) };
}

function describeError(error: unknown): string {
  const { errorName, errorMessage } = errorKeys(error);
  return `${errorName}: ${errorMessage}`;
}

async function warmPoolInstances(deps: Deps, groupName: string): Promise<Instance[]> {
  const instances: Instance[] = [];
  const pages = paginateDescribeWarmPool(
    { client: deps.clients.autoScaling },
    { AutoScalingGroupName: groupName },
  );
  for await (const page of pages) instances.push(...(page.Instances ?? []));
  return instances;
}

async function reconcileInstance(
  deps: Deps,
  run: GroupRun,
  instance: WaitingInstance,
): Promise<InstanceReconcile> {
  const { name: groupName, group } = run;
  const { instanceId, place, state } = instance;
  const action: LifecycleAction = { group: groupName, hook: group.lifecycleHookName, instanceId };
  const keys = { instanceId, group: groupName, state };

  const launches = await run.launches();
  const start = launches.starts.get(instanceId);
  if (start && deps.clock.now() - start.getTime() < leftToQueueSeconds(deps, group) * 1000) {
    return 'left-to-queue';
  }

  const commands = (await selfDeployCommands(deps, instanceId)).filter(
    (command) => command.Parameters?.autoScalingGroupName?.[0] === groupName,
  );
  const wait = { groupName, hook: group.lifecycleHookName, instanceId, place };
  const forWait = commands.filter((command) => isForWait(command, wait));
  let current: ListedCommand[] = [];
  if (forWait.length > 0) {
    if (start) {
      current = forWait.filter((command) =>
        sentDuringCurrentWait(launches, instanceId, command.RequestedDateTime),
      );
    } else {
      deps.logger.warn(
        `no launch activity of the instance in ${MAX_ACTIVITY_PAGES} pages of its group's activities; its commands are not trusted`,
        keys,
      );
    }
  }

  // Newest first; a run that ended without a verdict leaves the decision to an earlier one.
  for (const command of current) {
    const { CommandId: commandId, Status: status } = command;
    if (status === undefined || !isTerminalStatus(status)) {
      if (overdue(deps, command)) {
        // No heartbeat for a run SSM itself has given up on: the hook's timeout ends the wait.
        deps.logger.warn('waiting instance whose self-deploy runs past its timeouts; no heartbeat', {
          ...keys,
          commandId,
        });
        return 'deploy-overdue';
      }
      return (await heartbeat(deps, action)) === 'expired' ? 'action-ended' : 'heartbeat';
    }
    deps.logger.warn('waiting instance whose self-deploy already finished: its status event was lost', {
      ...keys,
      commandId,
    });
    const finished = await finishCommand(
      deps,
      {
        commandId,
        status,
        parameters: fromCommandParameters(command.Parameters),
        instanceIds: [instanceId],
        ...(command.RequestedDateTime && { requestedAt: command.RequestedDateTime }),
      },
      launches,
    );
    const mine = finished.outcome === 'lifecycle' ? finished.instances[instanceId] : undefined;
    if (mine?.outcome === 'completed') return 'completed';
    if (mine?.outcome === 'expired') return 'action-ended';
  }

  const cameFromWarmPool = commands.some(
    (command) => placeOfComment(command.Comment) === 'WarmPool' && command.Status === 'Success',
  );
  if (warmPoolDecision(group.warmPool, cameFromWarmPool ? 'WarmPool' : undefined, place) === 'continue') {
    await completeAction(deps, action, 'CONTINUE', {
      ...keys,
      reason: `warm-pool policy ${group.warmPool}`,
    });
    return 'continued-without-deploy';
  }

  // The same rules as the launch event the hook would have sent.
  const metadata = readMetadata(await run.metadata());
  if (metadata.kind === 'invalid') {
    deps.logger.error(`abandoning: ${metadata.reason}`, keys);
    if (
      (await completeAction(deps, action, 'ABANDON', { ...keys, reason: metadata.reason })) === 'completed'
    ) {
      deps.metrics.record(MetricName.BootstrapFailed, groupName);
    }
    return 'abandoned';
  }
  if (metadata.kind === 'note') deps.logger.info('launch note', { ...keys, note: metadata.text });

  deps.logger.warn(
    'waiting instance has no self-deploy for its current wait: its launch event was lost; starting one',
    keys,
  );
  const target = noDeployHolds(
    {
      instanceId,
      groupName,
      group,
      action,
      place,
      reason: 'reconcile',
      ...(metadata.kind === 'overrides' && { overrides: metadata.overrides }),
    },
    current,
  );
  const started = await startDeploy(deps, target, deps.clock.now());
  return started.outcome === 'started' ? 'deploy-started' : started.outcome;
}

/**
 * How young a wait the reconciler leaves alone: the queue watches a launch until its agent-wait
 * deadline and its status event arrives through the same queue, so looking earlier only races
 * them (a burst's backlog of status events would find their actions already completed, each a
 * wasted call of the operation whose rate bounds the burst). Half the heartbeat timeout at
 * most, so a running deploy is still heartbeaten in time.
 */
export function leftToQueueSeconds(deps: Deps, group: GroupConfig): number {
  return Math.min(deps.config.agentWaitSeconds, group.heartbeatTimeoutSeconds / 2);
}

/** Running longer than SSM itself would let it (delivery plus execution timeout). */
function overdue(deps: Deps, command: ListedCommand): boolean {
  const requested = command.RequestedDateTime?.getTime();
  const limitMs = ((command.TimeoutSeconds ?? 0) + deps.config.executionTimeoutSeconds) * 1000;
  return requested !== undefined && deps.clock.now() - requested > limitMs;
}
