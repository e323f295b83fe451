import {
  type Instance,
  paginateDescribeAutoScalingGroups,
  paginateDescribeWarmPool,
} from '@aws-sdk/client-auto-scaling';
import type { Command } from '@aws-sdk/client-ssm';
import { fromCommandParameters } from '../shared/document-contract';
import { isTerminalStatus } from '../shared/event-patterns';
import { MetricName } from '../shared/metric-names';
import { selfDeployCommands } from './commands';
import { finishCommand } from './completion';
import type { GroupConfig } from './config';
import { chunk, mapLimited, type Place, placeOfComment, WAIT_STATES, warmPoolDecision } from './decisions';
import type { Deps } from './deps';
import { startDeploy } from './launch';
import { completeAction, heartbeat, type LifecycleAction } from './lifecycle';

/** Instances looked at in parallel; bounded so a big fleet does not burst the APIs. */
const CONCURRENCY = 10;
/** DescribeAutoScalingGroups takes at most this many names per call. */
const GROUP_NAMES_PER_CALL = 100;

/** What the reconciler did with one waiting instance. */
export type InstanceReconcile =
  | 'deploy-started'
  | 'completed'
  | 'continued-without-deploy'
  | 'heartbeat'
  | 'agent-not-ready'
  | 'send-refused'
  | 'deploy-overdue'
  | 'action-ended';

/** Outcomes that leave an instance waiting with nothing moving it forward. */
const STUCK: ReadonlySet<InstanceReconcile> = new Set(['agent-not-ready', 'send-refused', 'deploy-overdue']);

export interface ReconcileSummary {
  readonly groups: Record<
    string,
    { waiting: number; stuck: number; instances: Record<string, InstanceReconcile> }
  >;
}

/**
 * Repairs what lost events leave behind, for every instance a launch hook still holds:
 * no command → start one (lost launch event); command finished → complete (lost status
 * event); command running → heartbeat. Publishes StuckInstances per group, zeros included,
 * so the alarm always has data.
 */
export async function reconcile(deps: Deps): Promise<ReconcileSummary> {
  const names = Object.keys(deps.config.groups);
  const waiting: { groupName: string; instance: Instance }[] = [];
  for (const batch of chunk(names, GROUP_NAMES_PER_CALL)) {
    const pages = paginateDescribeAutoScalingGroups(
      { client: deps.clients.autoScaling },
      { AutoScalingGroupNames: batch },
    );
    for await (const page of pages) {
      for (const group of page.AutoScalingGroups ?? []) {
        const groupName = group.AutoScalingGroupName;
        if (!groupName) continue;
        const instances = [...(group.Instances ?? [])];
        // Warm-pool instances are not among the group's instances; only DescribeWarmPool lists them.
        if (group.WarmPoolConfiguration) instances.push(...(await warmPoolInstances(deps, groupName)));
        for (const instance of instances) {
          if (WAIT_STATES[instance.LifecycleState ?? '']) waiting.push({ groupName, instance });
        }
      }
    }
  }

  const outcomes = await mapLimited(waiting, CONCURRENCY, ({ groupName, instance }) =>
    reconcileInstance(deps, groupName, instance),
  );

  const summary: ReconcileSummary = {
    groups: Object.fromEntries(names.map((name) => [name, { waiting: 0, stuck: 0, instances: {} }])),
  };
  waiting.forEach(({ groupName, instance }, index) => {
    const entry = summary.groups[groupName];
    const outcome = outcomes[index];
    if (!entry || !outcome || !instance.InstanceId) return;
    entry.waiting += 1;
    entry.instances[instance.InstanceId] = outcome;
    if (STUCK.has(outcome)) entry.stuck += 1;
  });
  for (const [name, entry] of Object.entries(summary.groups)) {
    deps.metrics.record(MetricName.StuckInstances, name, entry.stuck);
  }
  deps.logger.info('reconcile finished', { summary });
  return summary;
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
  groupName: string,
  instance: Instance,
): Promise<InstanceReconcile> {
  const group = deps.config.groups[groupName] as GroupConfig;
  const instanceId = instance.InstanceId as string;
  const place = WAIT_STATES[instance.LifecycleState as string] as Place;
  const action: LifecycleAction = { group: groupName, hook: group.lifecycleHookName, instanceId };
  const keys = { instanceId, group: groupName, state: instance.LifecycleState };

  const commands = (await selfDeployCommands(deps, instanceId)).filter(
    (command) => command.Parameters?.autoScalingGroupName?.[0] === groupName,
  );
  const current = commands.find((command) => placeOfComment(command.Comment) === place);

  if (!current) {
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
    deps.logger.warn('waiting instance has no self-deploy: its launch event was lost; starting one', keys);
    const started = await startDeploy(
      deps,
      { instanceId, groupName, group, action, place, reason: 'reconcile' },
      0,
    );
    return started.outcome === 'started' || started.outcome === 'duplicate'
      ? 'deploy-started'
      : started.outcome;
  }

  const commandId = current.CommandId as string;
  if (isTerminalStatus(current.Status)) {
    deps.logger.warn('waiting instance whose self-deploy already finished: its status event was lost', {
      ...keys,
      commandId,
    });
    await finishCommand(deps, {
      commandId,
      status: current.Status as string,
      // The token may belong to an action that ended; the instance names the one waiting now.
      parameters: { ...fromCommandParameters(current.Parameters), lifecycleActionToken: '' },
      instanceId,
      ...(current.RequestedDateTime && { requestedAt: current.RequestedDateTime.toISOString() }),
    });
    return 'completed';
  }

  if (overdue(deps, current)) {
    // No heartbeat for a run SSM itself has given up on: the hook's timeout ends the wait.
    deps.logger.warn('waiting instance whose self-deploy runs past its timeouts; no heartbeat', {
      ...keys,
      commandId,
    });
    return 'deploy-overdue';
  }
  return (await heartbeat(deps, action)) === 'expired' ? 'action-ended' : 'heartbeat';
}

/** Running longer than SSM itself would let it (delivery plus execution timeout). */
function overdue(deps: Deps, command: Command): boolean {
  const requested = command.RequestedDateTime?.getTime();
  const limitMs = ((command.TimeoutSeconds ?? 0) + deps.config.executionTimeoutSeconds) * 1000;
  return requested !== undefined && deps.clock.now() - requested > limitMs;
}
