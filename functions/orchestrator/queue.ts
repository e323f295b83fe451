import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { InvalidInputError } from '../shared/errors';
import { type AgentWait, isWaitMessage, newWait, readWaitMessage } from './agent-wait';
import {
  type CompletionOutcome,
  type FinishedCommand,
  finishCommands,
  finishedCommandOf,
} from './completion';
import { advanceNudged } from './deployments';
import type { Deps } from './deps';
import { type CommandStatusEvent, classify, type InvocationStatusEvent, type LifecycleEvent } from './events';
import { checkLaunch, type LaunchOutcome } from './launch';
import { isNudgeMessage, type Nudge, type NudgeOutcome, readNudgeMessage } from './nudge';
import { asError, mapLimited, settled } from './utilities';
import { advanceWaits } from './wait-queue';

/** Records read at once before the batch's shared reads (agents, scaling activities). */
const READ_CONCURRENCY = 10;

type StatusEvent = CommandStatusEvent | InvocationStatusEvent;

/** What one queue message is. */
type Item =
  | { readonly kind: 'launch'; readonly event: LifecycleEvent; readonly queuedAt: number }
  | { readonly kind: 'wait'; readonly wait: AgentWait }
  | { readonly kind: 'status'; readonly event: StatusEvent }
  | { readonly kind: 'nudge'; readonly nudge: Nudge }
  | { readonly kind: 'ignored'; readonly reason: string };

type Outcome = LaunchOutcome | CompletionOutcome | NudgeOutcome;

/** Whether the input is a batch of SQS messages from an event source mapping. */
export function isQueueBatch(input: unknown): input is SQSEvent {
  if (typeof input !== 'object' || input === null) return false;
  const records = (input as { Records?: unknown }).Records;
  return (
    Array.isArray(records) &&
    records.length > 0 &&
    records.every((record) => (record as { eventSource?: unknown } | null)?.eventSource === 'aws:sqs')
  );
}

/**
 * A batch from the queue: launch events (EventBridge puts them there), agent waits put back to
 * be looked at again, and SSM status events. Launches and waits share one look at their agents
 * (one DescribeInstanceInformation per 50 instances); status events share one scan of each
 * group's scaling activities. Each message that fails is reported on its own
 * (batchItemFailures), so it alone comes back after the visibility timeout; the rest are done.
 */
export async function handleQueue(deps: Deps, event: SQSEvent, context?: Context): Promise<SQSBatchResponse> {
  const items = event.Records.map((record) => readRecord(record));
  const outcomes = await settle(deps, items);
  const byMessage = new Map(event.Records.map((record, index) => [record.messageId, outcomes[index]]));
  const processor = new BatchProcessor(EventType.SQS);
  return processPartialResponse(
    event,
    async (record: SQSRecord) => {
      const outcome = byMessage.get(record.messageId);
      if (outcome instanceof Error || outcome === undefined) {
        deps.logger.error('queue message failed; it comes back after the visibility timeout', {
          messageId: record.messageId,
          receiveCount: record.attributes.ApproximateReceiveCount,
          error: outcome ?? new Error('no outcome'),
        });
        throw outcome ?? new Error(`no outcome for message ${record.messageId}`);
      }
      return outcome;
    },
    processor,
    { ...(context && { context }), throwOnFullBatchFailure: false },
  );
}

/** Reads one message; anything but an agent wait or a nudge is an EventBridge event and classified as one. */
function readRecord(record: SQSRecord): Item | InvalidInputError {
  let json: unknown;
  try {
    json = JSON.parse(record.body);
  } catch {
    return new InvalidInputError(`queue message ${record.messageId} is not JSON`);
  }
  try {
    if (isWaitMessage(json)) return { kind: 'wait', wait: readWaitMessage(json) };
    if (isNudgeMessage(json)) return { kind: 'nudge', nudge: readNudgeMessage(json) };
    const request = classify(json);
    switch (request.kind) {
      case 'lifecycle':
        return { kind: 'launch', event: request.event, queuedAt: Number(record.attributes.SentTimestamp) };
      case 'command-status':
      case 'invocation-status':
        return { kind: 'status', event: request.event };
      case 'test-notification':
        return { kind: 'ignored', reason: 'Auto Scaling test notification' };
      default:
        return new InvalidInputError(
          `queue message ${record.messageId}: a ${request.kind} request is not queued`,
        );
    }
  } catch (error) {
    return asError(error);
  }
}

/** The outcome (or error) of every item, in order. */
async function settle(deps: Deps, items: readonly (Item | Error)[]): Promise<Array<Outcome | Error>> {
  const outcomes: Array<Outcome | Error | undefined> = [];
  const launches: { index: number; event: LifecycleEvent; queuedAt: number }[] = [];
  const waits: { index: number; wait: AgentWait }[] = [];
  const statuses: { index: number; event: StatusEvent }[] = [];
  const nudges: { index: number; nudge: Nudge }[] = [];
  items.forEach((item, index) => {
    if (item instanceof Error) outcomes[index] = item;
    else if (item.kind === 'ignored') outcomes[index] = { outcome: 'ignored', reason: item.reason };
    else if (item.kind === 'launch') launches.push({ index, ...item });
    else if (item.kind === 'wait') waits.push({ index, wait: item.wait });
    else if (item.kind === 'nudge') nudges.push({ index, nudge: item.nudge });
    else statuses.push({ index, event: item.event });
  });

  // Status events never wait behind the batch's sends: SendCommand's rate is what a burst's
  // launches queue on, and the completions are what lets instances into service.
  await Promise.all([
    settleLaunches(deps, launches, waits, outcomes),
    settleStatuses(deps, statuses, outcomes),
    settleNudges(deps, nudges, outcomes),
  ]);

  return items.map((_, index) => outcomes[index] ?? new Error('message not handled'));
}

/** Decides the launches; those that need a deploy join the waits, which are then advanced. */
async function settleLaunches(
  deps: Deps,
  launches: readonly { index: number; event: LifecycleEvent; queuedAt: number }[],
  waits: { index: number; wait: AgentWait }[],
  outcomes: Array<Outcome | Error | undefined>,
): Promise<void> {
  const checked = await mapLimited(launches, READ_CONCURRENCY, ({ event }) =>
    settled(() => checkLaunch(deps, event)),
  );
  launches.forEach(({ index, queuedAt }, n) => {
    const result = checked[n];
    if (result === undefined || result instanceof Error) outcomes[index] = result;
    else if ('done' in result) outcomes[index] = result.done;
    else waits.push({ index, wait: newWait(result.target, queuedAt, deps.config.agentWaitSeconds) });
  });
  await settleWaits(deps, waits, outcomes);
}

/** Completes the lifecycle actions of the commands whose status events are in the batch. */
async function settleStatuses(
  deps: Deps,
  statuses: readonly { index: number; event: StatusEvent }[],
  outcomes: Array<Outcome | Error | undefined>,
): Promise<void> {
  const finished = await mapLimited(statuses, READ_CONCURRENCY, ({ event }) =>
    settled(() => finishedCommandOf(deps, event)),
  );
  const commands: { index: number; command: FinishedCommand }[] = [];
  statuses.forEach(({ index }, n) => {
    const result = finished[n];
    if (result === undefined || result instanceof Error || 'outcome' in result) outcomes[index] = result;
    else commands.push({ index, command: result });
  });
  const completed = await finishCommands(
    deps,
    commands.map(({ command }) => command),
  );
  commands.forEach(({ index }, n) => {
    outcomes[index] = completed[n];
  });
}

/**
 * Advances the deployment each nudge names. Copies of a nudge in one batch (SQS delivers at
 * least once) count once, so they nudge again only once; a failed one comes back alone.
 */
async function settleNudges(
  deps: Deps,
  nudges: readonly { index: number; nudge: Nudge }[],
  outcomes: Array<Outcome | Error | undefined>,
): Promise<void> {
  const { unique, copies } = firstCopies(
    nudges,
    ({ nudge }) => `${nudge.groupName}/${nudge.deploymentId}/${nudge.step}`,
  );
  await mapLimited(unique, READ_CONCURRENCY, async ({ index, nudge }) => {
    outcomes[index] = await settled(() => advanceNudged(deps, nudge));
  });
  for (const { index } of copies)
    outcomes[index] = { outcome: 'ignored', reason: 'a second copy of a nudge' };
}

/**
 * Advances the waits, each lifecycle wait once: a wait delivered twice (SQS delivers at least
 * once; EventBridge may put a launch event twice) shares the first copy's outcome.
 */
async function settleWaits(
  deps: Deps,
  waits: readonly { index: number; wait: AgentWait }[],
  outcomes: Array<Outcome | Error | undefined>,
): Promise<void> {
  const { unique, copies } = firstCopies(waits, ({ wait }) => `${wait.instanceId}/${wait.token}`);
  const advanced = await advanceWaits(
    deps,
    unique.map(({ wait }) => wait),
  );
  unique.forEach(({ index }, n) => {
    outcomes[index] = advanced[n];
  });
  for (const { index, of } of copies) {
    const outcome = outcomes[of];
    outcomes[index] =
      outcome instanceof Error || outcome === undefined
        ? outcome
        : { outcome: 'ignored', reason: 'a second copy of a wait handled in the same batch' };
  }
}

/**
 * Splits a batch's entries into the first of each key and the later copies (each naming the
 * index of its first): SQS and EventBridge deliver at least once, so one batch may hold a
 * message twice.
 */
function firstCopies<T extends { readonly index: number }>(
  entries: readonly T[],
  key: (entry: T) => string,
): { unique: T[]; copies: { index: number; of: number }[] } {
  const first = new Map<string, number>();
  const unique: T[] = [];
  const copies: { index: number; of: number }[] = [];
  for (const entry of entries) {
    const seen = first.get(key(entry));
    if (seen === undefined) {
      first.set(key(entry), entry.index);
      unique.push(entry);
    } else copies.push({ index: entry.index, of: seen });
  }
  return { unique, copies };
}
