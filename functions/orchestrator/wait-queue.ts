import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import { InvalidInputError } from '../shared/errors';
import { type AgentWait, relookDelaySeconds, waitMessage } from './agent-wait';
import { agentStatuses } from './commands';
import { managedGroup } from './config';
import { type DeployTarget, firstDuplicateCheck, type StartOutcome, startDeploy } from './deploy-start';
import type { Deps } from './deps';
import { continuePaused } from './launch-revision';
import { heartbeat } from './lifecycle';
import { type GroupRecord, readGroupRecord } from './release-store';
import { chunk, mapLimited, settled } from './utilities';

/** SendMessageBatch's own limit on entries per call. */
const MESSAGES_PER_BATCH = 10;
/** Waits handled at once: each online one costs a ListCommands and a SendCommand. */
const SEND_CONCURRENCY = 10;

/** What became of one agent wait. */
export type WaitOutcome =
  | StartOutcome
  | { outcome: 'duplicate'; commandId: string }
  /** Not online yet: the wait went back to the queue, to be looked at again after the delay. */
  | { outcome: 'waiting'; attempt: number; delaySeconds: number }
  /** The lifecycle action ended while its instance's agent was awaited (hook timeout, completion elsewhere). */
  | { outcome: 'action-ended' };

/**
 * Puts each wait back on the queue, due after its delay (the message's DelaySeconds); returns
 * the error of each entry SQS did not take, by index.
 */
async function requeue(
  deps: Deps,
  entries: readonly { wait: AgentWait; delaySeconds: number }[],
): Promise<Map<number, Error>> {
  const failed = new Map<number, Error>();
  const batches = chunk(
    entries.map((entry, index) => ({ ...entry, index })),
    MESSAGES_PER_BATCH,
  );
  for (const batch of batches) {
    const output = await deps.clients.sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: deps.config.waitQueueUrl,
        Entries: batch.map(({ wait, delaySeconds, index }) => ({
          Id: String(index),
          MessageBody: waitMessage(wait),
          DelaySeconds: delaySeconds,
        })),
      }),
    );
    for (const entry of output.Failed ?? []) {
      failed.set(
        Number(entry.Id),
        new Error(`SendMessageBatch refused the wait: ${entry.Code}: ${entry.Message ?? ''}`),
      );
    }
  }
  return failed;
}

/**
 * Advances every wait by one look at its agent: one DescribeInstanceInformation per 50
 * instances, then, for each instance online, the duplicate check and SendCommand. Waits whose
 * agent is not online go back to the queue with a growing, jittered delay until their
 * deadline, then are left to the reconciler (and, last, to the hook's timeout), heartbeating
 * the lifecycle action when the wait is long. Waits of a paused group go into service at once
 * without a deploy, agent or not. Nothing sleeps. The result of each wait is its outcome or the
 * error that stopped it, in order, so one wait's failure is only its own.
 */
export async function advanceWaits(
  deps: Deps,
  waits: readonly AgentWait[],
): Promise<Array<WaitOutcome | Error>> {
  const entries = waits.map((wait) => ({ wait, target: deployTarget(deps, wait) }));
  const records = await groupRecords(
    deps,
    entries.flatMap(({ target }) => (target instanceof Error ? [] : [target.groupName])),
  );
  const recordOf = (target: DeployTarget) => records.get(target.groupName) ?? new Error('no group record');
  const looking = entries.filter(({ target }) => {
    if (target instanceof Error) return false;
    const record = recordOf(target);
    return !(record instanceof Error) && !record.paused;
  });
  const ids = [...new Set(looking.map(({ wait }) => wait.instanceId))];
  const statuses = await settled(() => agentStatuses(deps, ids));

  const waitsToQueue: { wait: AgentWait; delaySeconds: number; index: number }[] = [];
  const results = await mapLimited(entries, SEND_CONCURRENCY, ({ wait, target }, index) => {
    if (target instanceof Error) return Promise.resolve(target);
    const record = recordOf(target);
    if (record instanceof Error) return Promise.resolve(record);
    const { paused } = record;
    if (paused) return settled(() => continuePaused(deps, target.action, paused));
    // Without the agents' statuses no wait can move; each comes back after its visibility timeout.
    if (statuses instanceof Error) return Promise.resolve(statuses);
    return settled(async (): Promise<WaitOutcome> => {
      if (statuses.get(wait.instanceId) === 'Online') return send(deps, target, wait);
      const next = await nextLook(deps, target, wait);
      if ('outcome' in next) return next;
      waitsToQueue.push({ ...next, index });
      return { outcome: 'waiting', attempt: next.wait.attempt, delaySeconds: next.delaySeconds };
    });
  });

  if (waitsToQueue.length > 0) {
    const failed = await settled(() => requeue(deps, waitsToQueue));
    waitsToQueue.forEach((entry, position) => {
      const error = failed instanceof Error ? failed : failed.get(position);
      if (error) results[entry.index] = error;
    });
  }
  return results;
}

/**
 * Each group's record (release, pause), read once per group (and cached across batches, so a
 * burst costs a handful of Parameter Store reads); a group whose read fails has the error, and
 * its waits come back after their visibility timeout rather than deploy something else.
 */
async function groupRecords(
  deps: Deps,
  groupNames: readonly string[],
): Promise<Map<string, GroupRecord | Error>> {
  const unique = [...new Set(groupNames)];
  const records = await Promise.all(unique.map((name) => settled(() => readGroupRecord(deps, name))));
  return new Map(unique.map((name, index) => [name, records[index] ?? new Error('no group record')]));
}

/** The deploy a wait is for; an error when its group or hook is not one selfdeploy manages. */
function deployTarget(deps: Deps, wait: AgentWait): DeployTarget | InvalidInputError {
  const group = managedGroup(deps.config, wait.groupName);
  if (!group)
    return new InvalidInputError(
      `agent wait for ${wait.instanceId}: group ${wait.groupName} is not managed by selfdeploy`,
    );
  if (wait.hook !== group.lifecycleHookName) {
    return new InvalidInputError(
      `agent wait for ${wait.instanceId}: hook ${wait.hook} is not the selfdeploy hook ${group.lifecycleHookName}`,
    );
  }
  return {
    instanceId: wait.instanceId,
    groupName: wait.groupName,
    group,
    action: { group: wait.groupName, hook: wait.hook, token: wait.token, instanceId: wait.instanceId },
    place: wait.place,
    reason: 'launch',
    ...(wait.overrides && { overrides: wait.overrides }),
  };
}

/** The agent is online: send, unless a deploy for this wait was already sent (a duplicate, or the reconciler). */
async function send(deps: Deps, target: DeployTarget, wait: AgentWait): Promise<WaitOutcome> {
  const check = await firstDuplicateCheck(deps, target);
  if (check.found === 'deploy') {
    deps.logger.info('a deploy was already started for this lifecycle wait', {
      instanceId: target.instanceId,
      group: target.groupName,
      commandId: check.commandId,
      attempt: wait.attempt,
    });
    return { outcome: 'duplicate', commandId: check.commandId };
  }
  return startDeploy(deps, check.target, wait.waitStart, true);
}

/** The agent is not online: past the deadline, leave it; else heartbeat when due and look again later. */
async function nextLook(
  deps: Deps,
  target: DeployTarget,
  wait: AgentWait,
): Promise<WaitOutcome | { wait: AgentWait; delaySeconds: number }> {
  const now = deps.clock.now();
  const keys = { instanceId: wait.instanceId, group: wait.groupName, attempt: wait.attempt + 1 };
  const agentWaitSeconds = (now - wait.waitStart) / 1000;
  if (now >= wait.deadline) {
    deps.logger.warn('SSM agent not registered yet; leaving this instance to the reconciler', {
      ...keys,
      agentWaitSeconds,
    });
    return { outcome: 'agent-not-ready', agentWaitSeconds };
  }
  let lastHeartbeat = wait.lastHeartbeat;
  const delaySeconds = relookDelaySeconds(wait, (wait.deadline - now) / 1000);
  // Heartbeat when the hook's timeout could pass before the next look ends.
  const heartbeatDue =
    now + delaySeconds * 1000 - lastHeartbeat >= (target.group.heartbeatTimeoutSeconds * 1000) / 2;
  if (heartbeatDue) {
    if ((await heartbeat(deps, target.action)) === 'expired') {
      deps.logger.info('lifecycle action ended while waiting for the SSM agent', keys);
      return { outcome: 'action-ended' };
    }
    lastHeartbeat = now;
  }
  return { wait: { ...wait, attempt: wait.attempt + 1, lastHeartbeat }, delaySeconds };
}
