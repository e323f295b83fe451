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
import { heartbeat, type LifecycleAction } from './lifecycle';
import { backoffMs } from './utilities';
import { scanLaunches, sentDuringCurrentWait } from './wait-start';

// Starting the self-deploy for one lifecycle wait, shared by the launch handler and the reconciler.

/** How starting a deploy for one lifecycle wait ended. */
export type StartOutcome =
  | { outcome: 'started'; commandId: string; agentWaitSeconds: number }
  | { outcome: 'duplicate'; commandId: string }
  | { outcome: 'agent-not-ready'; agentWaitSeconds: number }
  /** SendCommand refuses an instance whose agent is online: a permission, not a wait. */
  | { outcome: 'send-refused'; reason: string }
  | { outcome: 'action-ended' };

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
 * Sends the SelfDeploy command. While the instance's SSM agent has not registered
 * (InvalidInstanceId) it polls the agent's status with jittered exponential backoff until
 * `waitBudgetMs` is spent, heartbeating the hook when the wait is long, and sends as soon as
 * the agent is online — unless a deploy for this wait was started meanwhile (a duplicate
 * delivery, or the reconciler). Out of budget, it stops cleanly: the reconciler tries again
 * later and the hook's timeout has the last word. An agent that is online while SendCommand
 * still answers InvalidInstanceId is not waited for: that is the role's tag condition.
 */
export async function startDeploy(
  deps: Deps,
  target: CheckedTarget,
  waitBudgetMs: number,
): Promise<StartOutcome> {
  const { clock } = deps;
  const keys = { instanceId: target.instanceId, group: target.groupName };
  const started = clock.now();
  const deadline = started + Math.max(0, waitBudgetMs);
  const heartbeatEveryMs = (target.group.heartbeatTimeoutSeconds * 1000) / 2;
  let lastHeartbeat = started;
  const waited = () => (clock.now() - started) / 1000;

  for (let attempt = 0; ; attempt++) {
    const online = attempt > 0 && (await agentOnline(deps, target.instanceId));
    if (attempt === 0 || online) {
      const other = attempt === 0 ? undefined : await existingDeploy(deps, target);
      if (other) {
        deps.logger.info('a deploy was started for this instance while waiting for its agent', {
          ...keys,
          commandId: other,
        });
        return { outcome: 'duplicate', commandId: other };
      }
      const commandId = await trySend(deps, target);
      if (commandId) {
        const agentWaitSeconds = waited();
        deps.metrics.record(MetricName.BootstrapStarted, target.groupName);
        deps.metrics.record(MetricName.AgentWait, target.groupName, agentWaitSeconds, 'Seconds');
        deps.logger.info('self-deploy started', {
          ...keys,
          commandId,
          attempts: attempt + 1,
          agentWaitSeconds,
        });
        return { outcome: 'started', commandId, agentWaitSeconds };
      }
      if (online) return sendRefused(deps, target);
    }
    const left = deadline - clock.now();
    // Even without budget the agent is looked at once, so an agent that is there is diagnosed.
    if (left <= 0 && attempt > 0) {
      const agentWaitSeconds = waited();
      deps.logger.warn('SSM agent not registered yet; leaving this instance to the reconciler', {
        ...keys,
        attempts: attempt + 1,
        agentWaitSeconds,
      });
      return { outcome: 'agent-not-ready', agentWaitSeconds };
    }
    if (clock.now() - lastHeartbeat >= heartbeatEveryMs) {
      if ((await heartbeat(deps, target.action)) === 'expired') {
        deps.logger.info('lifecycle action ended while waiting for the SSM agent', keys);
        return { outcome: 'action-ended' };
      }
      lastHeartbeat = clock.now();
    }
    if (left > 0) await clock.sleep(Math.min(backoffMs(attempt, clock.random()), left));
  }
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
async function trySend(deps: Deps, target: DeployTarget): Promise<string | undefined> {
  try {
    return await sendSelfDeploy(
      deps,
      [target.instanceId],
      deployParameters(target.group, { ...target.overrides, action: target.action }),
      commandComment(target.reason, target.place),
    );
  } catch (error) {
    if (isAgentNotReady(error)) return undefined;
    throw error;
  }
}

/** Whether the instance's SSM agent is registered and online. */
async function agentOnline(deps: Deps, instanceId: string): Promise<boolean> {
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
