import type { SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import type { Clock } from './control-plane/clock';
import type { Queue, ReceivedMessage } from './control-plane/sqs';

/** The function a mapping invokes (a LocalLambda, synchronously). */
export interface MappedFunction {
  invoke(event: unknown): Promise<unknown>;
}

export interface EventSourceMappingOptions {
  readonly queue: Queue;
  readonly function: MappedFunction;
  readonly clock: Clock;
  readonly region: string;
  /** Messages per invocation, 1–10000; above 10 needs a batching window. @default 10 */
  readonly batchSize?: number;
  /** Seconds to gather a batch, 0–300. @default 0 */
  readonly maximumBatchingWindowInSeconds?: number;
  /** ScalingConfig.MaximumConcurrency, 2–1000: invocations the mapping runs at once. @default 1000 */
  readonly maximumConcurrency?: number;
  /** FunctionResponseTypes ['ReportBatchItemFailures']: the function reports failed items. @default false */
  readonly reportBatchItemFailures?: boolean;
  /** Simulated seconds a poller waits after a failed or throttled invocation. @default 1 */
  readonly backoffSeconds?: number;
}

/** How one invocation of the mapping ended. */
export interface BatchRecord {
  readonly messageIds: readonly string[];
  /** deleted: all deleted; partial: all but the reported items; failed: none (error or malformed response); throttled: none, not run. */
  readonly outcome: 'deleted' | 'partial' | 'failed' | 'throttled';
  readonly failedItems: readonly string[];
}

/** Lambda's SQS batch size limit without, and with, a batching window. */
const MAX_BATCH = { withoutWindow: 10, withWindow: 10_000 } as const;
/** A ReceiveMessage returns at most 10; Lambda's pollers long-poll 20 s. */
const RECEIVE = { max: 10, waitSeconds: 20 } as const;

/** The problems of a mapping's configuration, each as AWS's validation names it; empty when valid. */
export function mappingProblems(options: EventSourceMappingOptions): string[] {
  const problems: string[] = [];
  const batchSize = options.batchSize ?? 10;
  const window = options.maximumBatchingWindowInSeconds ?? 0;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > MAX_BATCH.withWindow)
    problems.push(`BatchSize ${batchSize} must be between 1 and ${MAX_BATCH.withWindow}`);
  else if (batchSize > MAX_BATCH.withoutWindow && window === 0)
    problems.push(
      `BatchSize ${batchSize} above ${MAX_BATCH.withoutWindow} needs MaximumBatchingWindowInSeconds of at least 1`,
    );
  if (!Number.isInteger(window) || window < 0 || window > 300)
    problems.push(`MaximumBatchingWindowInSeconds ${window} must be between 0 and 300`);
  const concurrency = options.maximumConcurrency;
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 2 || concurrency > 1000))
    problems.push(`ScalingConfig.MaximumConcurrency ${concurrency} must be between 2 and 1000`);
  return problems;
}

/**
 * Lambda's SQS event source mapping: pollers receive batches (up to BatchSize, gathered for up
 * to the batching window), invoke the function with Lambda's SQS event, delete what succeeded
 * and leave the rest to come back after the visibility timeout. At most MaximumConcurrency
 * invocations run at once; a throttled invocation deletes nothing and its poller backs off.
 */
export class EventSourceMapping {
  /** Every invocation's batch and outcome, in order of finishing. */
  public readonly batches: BatchRecord[] = [];
  /** The most invocations the mapping had running at once. */
  public peakConcurrency = 0;
  #running = 0;
  #stopped = false;
  readonly #pollers: Promise<void>[] = [];

  private constructor(private readonly options: EventSourceMappingOptions) {}

  /** Starts the pollers; throws one error naming every problem of the configuration. */
  public static start(options: EventSourceMappingOptions): EventSourceMapping {
    const problems = mappingProblems(options);
    if (problems.length > 0) throw new Error(`invalid event source mapping: ${problems.join('; ')}`);
    const mapping = new EventSourceMapping(options);
    for (let i = 0; i < (options.maximumConcurrency ?? 1000); i++) mapping.#pollers.push(mapping.#poll());
    return mapping;
  }

  /** Invocations running now. */
  public get concurrency(): number {
    return this.#running;
  }

  /** Stops polling; waits for running invocations to finish (a long poll ends at once). */
  public async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#pollers);
  }

  async #poll(): Promise<void> {
    while (!this.#stopped) {
      const batch = await this.#gather();
      if (this.#stopped || batch.length === 0) continue;
      this.#running++;
      this.peakConcurrency = Math.max(this.peakConcurrency, this.#running);
      let record: BatchRecord;
      try {
        record = await this.#invoke(batch);
      } finally {
        this.#running--;
      }
      this.batches.push(record);
      if (record.outcome === 'throttled' || record.outcome === 'failed') {
        await this.options.clock.sleep(this.options.backoffSeconds ?? 1);
      }
    }
  }

  /** One batch: a long poll for the first messages, then more until full or the window closes. */
  async #gather(): Promise<ReceivedMessage[]> {
    const { queue, clock } = this.options;
    const size = this.options.batchSize ?? 10;
    const window = this.options.maximumBatchingWindowInSeconds ?? 0;
    const visibility = queue.settings.VisibilityTimeout;
    const batch: ReceivedMessage[] = [];
    const first = await this.#receive(Math.min(size, RECEIVE.max), visibility, RECEIVE.waitSeconds);
    batch.push(...first);
    if (batch.length === 0 || window === 0) return batch;
    const closesAt = Date.now() + clock.realMs(window);
    while (batch.length < size && !this.#stopped) {
      const left = ((closesAt - Date.now()) * clock.scale) / 1000;
      if (left <= 0) break;
      batch.push(...(await this.#receive(Math.min(size - batch.length, RECEIVE.max), visibility, left)));
    }
    return batch;
  }

  /** A receive that a stop ends early (the stand-in's long polls would otherwise hold it). */
  async #receive(max: number, visibility: number, waitSeconds: number): Promise<ReceivedMessage[]> {
    let waited = 0;
    while (!this.#stopped) {
      const step = Math.min(1, waitSeconds - waited);
      const messages = await this.options.queue.receive(max, visibility, step);
      waited += step;
      if (messages.length > 0 || waited >= waitSeconds) return messages;
    }
    return [];
  }

  async #invoke(batch: readonly ReceivedMessage[]): Promise<BatchRecord> {
    const { queue } = this.options;
    const messageIds = batch.map((m) => m.messageId);
    const event: SQSEvent = { Records: batch.map((m) => this.#record(m)) };
    let result: unknown;
    try {
      result = await this.options.function.invoke(event);
    } catch (error) {
      const throttled = (error as { errorName?: string }).errorName === 'TooManyRequestsException';
      return { messageIds, outcome: throttled ? 'throttled' : 'failed', failedItems: messageIds };
    }
    const failed = this.options.reportBatchItemFailures ? failedItems(result, messageIds) : [];
    if (failed === undefined) return { messageIds, outcome: 'failed', failedItems: messageIds };
    for (const message of batch) {
      if (!failed.includes(message.messageId)) queue.delete(message.receiptHandle);
    }
    return { messageIds, outcome: failed.length > 0 ? 'partial' : 'deleted', failedItems: failed };
  }

  #record(m: ReceivedMessage): SQSRecord {
    return {
      messageId: m.messageId,
      receiptHandle: m.receiptHandle,
      body: m.body,
      attributes: { ...m.attributes },
      messageAttributes: Object.fromEntries(
        Object.entries(m.messageAttributes).map(([name, a]) => [
          name,
          {
            dataType: a.DataType,
            ...(a.StringValue !== undefined ? { stringValue: a.StringValue } : {}),
            ...(a.BinaryValue !== undefined ? { binaryValue: a.BinaryValue.toString('base64') } : {}),
            stringListValues: [],
            binaryListValues: [],
          },
        ]),
      ),
      md5OfBody: m.md5OfBody,
      ...(m.md5OfMessageAttributes ? { md5OfMessageAttributes: m.md5OfMessageAttributes } : {}),
      eventSource: 'aws:sqs',
      eventSourceARN: this.options.queue.arn,
      awsRegion: this.options.region,
    };
  }
}

/**
 * The message ids a ReportBatchItemFailures response names; [] for an empty or absent list
 * (all succeeded); undefined for a malformed response (Lambda then fails the whole batch).
 */
export function failedItems(result: unknown, messageIds: readonly string[]): string[] | undefined {
  if (result === undefined || result === null) return [];
  if (typeof result !== 'object' || Array.isArray(result)) return undefined;
  const list = (result as Partial<SQSBatchResponse>).batchItemFailures;
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) return undefined;
  const ids: string[] = [];
  for (const item of list as unknown[]) {
    const id = (item as { itemIdentifier?: unknown } | null)?.itemIdentifier;
    if (typeof id !== 'string' || id === '' || !messageIds.includes(id)) return undefined;
    ids.push(id);
  }
  return ids;
}
