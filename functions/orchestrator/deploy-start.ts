import type { Command } from '@aws-sdk/client-ssm';
import { isTerminalStatus } from '../shared/event-patterns';
import { MetricName } from '../shared/metric-names';
import { SEND_TAG_CONDITION_KEY } from '../shared/send-permission';
import {
  agentStatuses,
  deployParameters,
  isAgentNotReady,
  isThrottled,
  selfDeployCommands,
  sendSelfDeploy,
} from './commands';
import type { GroupConfig } from './config';
import { commandComment, isForWait, type Overrides, type Place } from './decisions';
import type { Deps } from './deps';
import { continuePaused, type LaunchRevision, launchRevision } from './launch-revision';
import type { LifecycleAction } from './lifecycle';
import { readGroupRecord } from './release-store';
import { scanLaunches, sentDuringCurrentWait } from './wait-start';

// Starting the self-deploy for one lifecycle wait, shared by the launch handler and the reconciler.

/** How starting a deploy for one lifecycle wait ended. */
export type StartOutcome =
  | { outcome: 'started'; commandId: string; agentWaitSeconds: number }
  | { outcome: 'agent-not-ready'; agentWaitSeconds: number }
  /** The group is paused: the instance went into service without a deploy. */
  | { outcome: 'continued-without-deploy'; reason: string }
  /** SendCommand refuses an instance whose agent is online: a permission, not a wait. */
  | { outcome: 'send-refused'; reason: string };

/** One instance to deploy for a lifecycle action. */
export interface DeployTarget {
  readonly instanceId: string;
  readonly groupName: string;
  readonly group: GroupConfig;
  readonly action: LifecycleAction;
  readonly place: Place;
  /** Who starts the deploy; recorded in the command's Comment. */
  readonly reason: 'launch' | 'reconcile';
  readonly overrides?: Overrides;
}

declare const noDeployFound: unique symbol;

/**
 * A target whose caller looked for a deploy of its current wait and found none. startDeploy
 * takes only this because its first send does not look again; only firstDuplicateCheck and
 * noDeployHolds make one.
 */
export type CheckedTarget = DeployTarget & { readonly [noDeployFound]: true };

/** What the first duplicate check found: the deploy already sent, or a target cleared to start one. */
export type DuplicateCheck =
  | { readonly found: 'deploy'; readonly commandId: string }
  | { readonly found: 'none'; readonly target: CheckedTarget };

/** The launch's duplicate check: a deploy already sent for the target's lifecycle wait (existingDeploy). */
export async function firstDuplicateCheck(deps: Deps, target: DeployTarget): Promise<DuplicateCheck> {
  const commandId = await existingDeploy(deps, target);
  return commandId ? { found: 'deploy', commandId } : { found: 'none', target: target as CheckedTarget };
}

/**
 * The reconciler's duplicate check, made on its own reads: every command it found for the
 * target's current wait (`current`) has ended without a verdict, so none holds the wait.
 */
export function noDeployHolds(
  target: DeployTarget,
  current: readonly Pick<Command, 'Status'>[],
): CheckedTarget {
  if (current.some((command) => !isTerminalStatus(command.Status))) {
    throw new Error(`a deploy for the current wait of ${target.instanceId} is still running`);
  }
  return target as CheckedTarget;
}

/**
 * Sends the SelfDeploy command once; never waits. What it deploys comes from the group's record
 * (cached; launchRevision), read at the moment of sending so a wait that outlived a deploy gets
 * the new release; while the group is paused it sends nothing and lets the instance through.
 * When SendCommand answers InvalidInstanceId, the agent's status tells why: not registered yet
 * (the caller queues the wait or leaves it to the reconciler) or online, which is the role's tag
 * condition refusing, not a wait. Pass `agentOnline` when the caller has just read it, so it is
 * not read again.
 */
export async function startDeploy(
  deps: Deps,
  target: CheckedTarget,
  waitStart: number,
  agentOnline?: boolean,
): Promise<StartOutcome> {
  const keys = { instanceId: target.instanceId, group: target.groupName };
  const record = await readGroupRecord(deps, target.groupName);
  if (record.paused) return continuePaused(deps, target.action, record.paused);
  const revision = launchRevision(target.group, record, target.overrides);
  if (revision.ignoredOverride !== undefined) {
    deps.logger.warn("the hook's revision override is ignored: the group deploys its release", {
      ...keys,
      override: revision.ignoredOverride,
      release: revision.revision,
    });
  }
  const commandId = await trySend(deps, target, revision);
  const agentWaitSeconds = Math.max(0, (deps.clock.now() - waitStart) / 1000);
  if (commandId) {
    deps.metrics.record(MetricName.BootstrapStarted, target.groupName);
    deps.metrics.record(MetricName.AgentWait, target.groupName, agentWaitSeconds, 'Seconds');
    deps.logger.info('self-deploy started', {
      ...keys,
      commandId,
      agentWaitSeconds,
      revision: revision.revision || '(branch head)',
      source: revision.source,
    });
    return { outcome: 'started', commandId, agentWaitSeconds };
  }
  if (agentOnline ?? (await isAgentOnline(deps, target.instanceId))) return sendRefused(deps, target);
  return { outcome: 'agent-not-ready', agentWaitSeconds };
}

function sendRefused(deps: Deps, target: DeployTarget): StartOutcome {
  const reason =
    'SendCommand answers InvalidInstanceId although the SSM agent is Online: the orchestrator may send ' +
    `only to instances whose ${SEND_TAG_CONDITION_KEY} tag names a managed group; check the instance's ` +
    "tags and the orchestrator role's policy";
  deps.logger.error(`not waiting for the agent: ${reason}`, {
    instanceId: target.instanceId,
    group: target.groupName,
    condition: SEND_TAG_CONDITION_KEY,
  });
  return { outcome: 'send-refused', reason };
}

/** SendCommand; undefined when the agent is not registered yet. */
async function trySend(
  deps: Deps,
  target: DeployTarget,
  { revision }: LaunchRevision,
): Promise<string | undefined> {
  try {
    return await sendSelfDeploy(
      deps,
      [target.instanceId],
      deployParameters(target.group, { ...target.overrides, revision, action: target.action }),
      commandComment(target.reason, target.place),
    );
  } catch (error) {
    if (isAgentNotReady(error)) return undefined;
    throw error;
  }
}

/** Whether the instance's SSM agent is registered and online. */
async function isAgentOnline(deps: Deps, instanceId: string): Promise<boolean> {
  return (await agentStatuses(deps, [instanceId])).get(instanceId) === 'Online';
}

/**
 * Reads for the duplicate checks. Under a burst of launches these are the first to be
 * throttled; when one stays throttled past the SDK's retries the check is skipped rather
 * than the launch failed, because a second deploy for a wait is harmless (the script's
 * lock: a second run for the same wait exits with no verdict) while a failed launch waits
 * a minute for Lambda's retry.
 */
async function unlessThrottled<T>(deps: Deps, instanceId: string, read: () => Promise<T>, fallback: T) {
  try {
    return await read();
  } catch (error) {
    if (!isThrottled(error)) throw error;
    deps.logger.warn('duplicate check throttled; sending without it', { instanceId });
    return fallback;
  }
}

/**
 * A deploy already sent for the target's lifecycle wait: one carrying its token, or one the
 * reconciler sent (no token) for this instance, group, hook and place during the current
 * wait. Scaling activities are read only when such a candidate exists, so a plain launch
 * costs no extra call; the newest candidate alone decides, since older ones are older still.
 */
async function existingDeploy(deps: Deps, target: DeployTarget): Promise<string | undefined> {
  const { instanceId } = target;
  const commands = await unlessThrottled(deps, instanceId, () => selfDeployCommands(deps, instanceId), []);
  const token = target.action.token;
  const sameToken =
    token && commands.find((command) => command.Parameters?.lifecycleActionToken?.[0] === token);
  if (sameToken) return sameToken.CommandId;
  const wait = { groupName: target.groupName, hook: target.action.hook, instanceId, place: target.place };
  const candidate = commands.find(
    (command) => isForWait(command, wait) && !command.Parameters?.lifecycleActionToken?.[0],
  );
  const requestedAt = candidate?.RequestedDateTime;
  if (!candidate || !requestedAt) return undefined;
  const launches = await unlessThrottled(
    deps,
    instanceId,
    () => scanLaunches(deps, target.groupName, [instanceId], { back: requestedAt }),
    undefined,
  );
  return launches && sentDuringCurrentWait(launches, instanceId, requestedAt)
    ? candidate.CommandId
    : undefined;
}
