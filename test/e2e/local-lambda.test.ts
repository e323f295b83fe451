import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlPlane } from '../../scripts/local/control-plane/control-plane';
import type { Queue } from '../../scripts/local/control-plane/sqs';
import { EventSourceMapping, type EventSourceMappingOptions } from '../../scripts/local/event-source-mapping';
import { ConcurrencyPool, type InvocationError, LocalLambda } from '../../scripts/local/lambda';
import type { EnvironmentReport } from '../fixtures/lambda/sqs-consumer';

// The local Lambda's execution environments and concurrency, and the SQS event source mapping.
jest.setTimeout(90_000);

const CONSUMER = join(__dirname, '..', 'fixtures', 'lambda', 'sqs-consumer.ts');

let dir: string;
let plane: ControlPlane;
const started: { stop(): Promise<void> }[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'local-lambda-'));
  plane = await ControlPlane.start({ timeScale: 20, duplicateDeliveries: { rate: 0 } });
});

afterEach(async () => {
  // Mappings first (they invoke the functions), then the functions.
  for (const thing of started.splice(0).reverse()) await thing.stop();
  await plane.close();
  rmSync(dir, { recursive: true, force: true });
});

async function consumer(
  options: {
    holdMs?: number;
    reservedConcurrency?: number;
    account?: ConcurrencyPool;
    timeoutSeconds?: number;
  } = {},
) {
  const trace = join(dir, `trace-${started.length}.jsonl`);
  writeFileSync(trace, '');
  const lambda = await LocalLambda.start({
    modulePath: CONSUMER,
    env: { ...plane.env(), HOLD_MS: String(options.holdMs ?? 0), TRACE_FILE: trace },
    logFile: join(dir, 'function.log'),
    clock: plane.clock,
    ...(options.reservedConcurrency === undefined
      ? {}
      : { reservedConcurrency: options.reservedConcurrency }),
    ...(options.account ? { account: options.account } : {}),
    ...(options.timeoutSeconds === undefined ? {} : { timeoutSeconds: options.timeoutSeconds }),
  });
  started.push(lambda);
  return { lambda, trace };
}

function map(options: Omit<EventSourceMappingOptions, 'clock' | 'region'>): EventSourceMapping {
  const mapping = EventSourceMapping.start({ ...options, clock: plane.clock, region: plane.region });
  // Stopped before the functions (afterEach stops in reverse order).
  started.push(mapping);
  return mapping;
}

interface TraceLine {
  readonly at: number;
  readonly kind: 'start' | 'end';
  readonly ids: string[];
  readonly bodies?: string[];
  readonly environmentId: string;
}

function traced(file: string): TraceLine[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as TraceLine);
}

/** The most invocations the trace shows running at once. */
function maxOverlap(lines: readonly TraceLine[]): number {
  let running = 0;
  let peak = 0;
  for (const line of [...lines].sort((a, b) => a.at - b.at || (a.kind === 'end' ? -1 : 1))) {
    running += line.kind === 'start' ? 1 : -1;
    peak = Math.max(peak, running);
  }
  return peak;
}

async function until(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function send(queue: Queue, bodies: readonly string[]): string[] {
  return bodies.map((body) => queue.send(body, {}, undefined).id);
}

describe('execution environments', () => {
  it('runs concurrent invocations in environments of their own, each with its own module state and SDK client, and reuses them', async () => {
    const { lambda } = await consumer({ holdMs: 300 });
    const reports = (await Promise.all([
      lambda.invoke({}),
      lambda.invoke({}),
      lambda.invoke({}),
    ])) as EnvironmentReport[];
    expect(new Set(reports.map((r) => r.environmentId)).size).toBe(3);
    expect(reports.map((r) => r.invocationsHere)).toEqual([1, 1, 1]);
    // One worker process hosts the three environments: three clients, one per environment.
    expect(reports.map((r) => r.clientsInProcess)).toEqual([3, 3, 3]);
    const again = (await lambda.invoke({})) as EnvironmentReport;
    expect(reports.map((r) => r.environmentId)).toContain(again.environmentId);
    expect(again.invocationsHere).toBe(2);
    expect(lambda.environments).toBe(3);
    expect(lambda.peakConcurrency).toBe(3);
    expect(new Set(lambda.invocations.map((i) => i.environment)).size).toBe(3);
    expect(lambda.invocations.filter((i) => i.initMs !== undefined)).toHaveLength(2);
  });

  it('throttles past its reserved concurrency and past the account’s; an async invoke retries until it runs', async () => {
    const { lambda } = await consumer({ holdMs: 300, reservedConcurrency: 2 });
    const outcomes = await Promise.allSettled([lambda.invoke({}), lambda.invoke({}), lambda.invoke({})]);
    const refused = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as InvocationError] : []));
    expect(refused.map((e) => [e.errorName, e.message])).toEqual([
      ['TooManyRequestsException', 'TooManyRequestsException: Rate Exceeded.'],
    ]);
    expect(lambda.throttles).toBe(1);
    const results = await Promise.all([
      lambda.invokeAsync({}),
      lambda.invokeAsync({}),
      lambda.invokeAsync({}),
    ]);
    expect(results).toHaveLength(3);
    expect(lambda.peakConcurrency).toBe(2);

    const account = new ConcurrencyPool(1);
    const first = await consumer({ holdMs: 300, account });
    const second = await consumer({ account });
    const running = first.lambda.invoke({});
    await expect(second.lambda.invoke({})).rejects.toMatchObject({ errorName: 'TooManyRequestsException' });
    await running;
  });

  it('fails its start when the module fails to initialise', async () => {
    await expect(
      LocalLambda.start({
        modulePath: join(__dirname, '..', 'fixtures', 'lambda', 'broken.ts'),
        env: plane.env(),
        logFile: join(dir, 'broken.log'),
      }),
    ).rejects.toMatchObject({
      errorName: 'Error',
      message: 'Error: SELFDEPLOY_CONFIG is invalid: groups: name at least one Auto Scaling group',
    });
  });

  it('discards an environment whose invocation timed out; the next runs in a new one', async () => {
    const { lambda } = await consumer({ holdMs: 1500, timeoutSeconds: 1 });
    await expect(lambda.invoke({})).rejects.toMatchObject({ errorName: 'Sandbox.Timedout' });
    const timedOut = lambda.invocations[0]?.environment;
    const next = lambda.invoke({});
    await expect(next).rejects.toMatchObject({ errorName: 'Sandbox.Timedout' });
    expect(lambda.invocations[1]?.environment).not.toBe(timedOut);
    expect(lambda.environments).toBe(2);
  });
});

describe('the SQS event source mapping', () => {
  it('never runs more invocations than its MaximumConcurrency, and handles every message', async () => {
    const { lambda, trace } = await consumer({ holdMs: 100 });
    const queue = plane.createQueue('work');
    const ids = send(
      queue,
      Array.from({ length: 40 }, (_, i) => `m${i}`),
    );
    const mapping = map({ queue, function: lambda, batchSize: 1, maximumConcurrency: 3 });
    await until(() => mapping.batches.filter((b) => b.outcome === 'deleted').length >= 40, 'every message');
    const lines = traced(trace);
    expect(maxOverlap(lines)).toBe(3);
    expect(mapping.peakConcurrency).toBe(3);
    expect(lambda.peakConcurrency).toBe(3);
    expect(new Set(lines.flatMap((l) => (l.kind === 'end' ? l.ids : [])))).toEqual(new Set(ids));
    expect(queue.counts()).toEqual({ visible: 0, notVisible: 0, delayed: 0 });
  });

  it('gathers a batch for the batching window; without one it invokes with what one receive returns', async () => {
    const { lambda, trace } = await consumer();
    const windowed = plane.createQueue('windowed');
    const direct = plane.createQueue('direct');
    map({
      queue: windowed,
      function: lambda,
      batchSize: 20,
      maximumBatchingWindowInSeconds: 20,
      maximumConcurrency: 2,
    });
    map({ queue: direct, function: lambda, batchSize: 10, maximumConcurrency: 2 });
    const sentAt = Date.now();
    // Ten messages over 18 simulated seconds, inside one 20-second window.
    const bodies = Array.from({ length: 10 }, (_, i) => `w${i}`);
    for (const body of bodies) {
      send(windowed, [body]);
      await plane.clock.sleep(2);
    }
    send(direct, ['now']);
    const directSentAt = Date.now();
    const starts = () => traced(trace).filter((l) => l.kind === 'start');
    await until(
      () =>
        starts()
          .flatMap((l) => l.bodies ?? [])
          .filter((b) => b.startsWith('w')).length === 10,
      'the windowed batches',
    );
    const windowedStarts = starts().filter((l) => l.bodies?.some((b) => b.startsWith('w')));
    // Each of the two pollers holds its batch for the whole window: at most two invocations.
    expect(windowedStarts.length).toBeLessThanOrEqual(2);
    expect((windowedStarts[0]?.at ?? 0) - sentAt).toBeGreaterThanOrEqual(plane.clock.realMs(20) - 50);
    const directStart = starts().find((l) => l.bodies?.includes('now'));
    expect((directStart?.at ?? Number.POSITIVE_INFINITY) - directSentAt).toBeLessThan(plane.clock.realMs(10));
  });

  it('deletes all but the items a partial batch response names; a malformed response or an error deletes none', async () => {
    const { lambda } = await consumer();
    const dead = plane.createQueue('dead');
    const queue = plane.createQueue('partial', {
      VisibilityTimeout: 2,
      RedrivePolicy: { deadLetterTargetArn: dead.arn, maxReceiveCount: 2 },
    });
    const [, failing] = send(queue, ['ok-1', 'fail-1', 'ok-2']);
    const mapping = map({
      queue,
      function: lambda,
      batchSize: 10,
      maximumBatchingWindowInSeconds: 1,
      maximumConcurrency: 2,
      reportBatchItemFailures: true,
    });
    await until(() => dead.counts().visible === 1, 'the failing item in the dead-letter queue');
    expect(mapping.batches[0]).toMatchObject({ outcome: 'partial', failedItems: [failing] });
    expect(queue.counts()).toEqual({ visible: 0, notVisible: 0, delayed: 0 });
    const [deadMessage] = await dead.receive(10, 30, 0);
    expect(deadMessage?.messageId).toBe(failing);

    const [malformed] = send(queue, ['malformed']);
    await until(
      () => mapping.batches.some((b) => b.messageIds.includes(malformed as string)),
      'the malformed batch',
    );
    expect(mapping.batches.find((b) => b.messageIds.includes(malformed as string))?.outcome).toBe('failed');
    const [thrown] = send(queue, ['throw']);
    await until(
      () => mapping.batches.some((b) => b.messageIds.includes(thrown as string)),
      'the failed batch',
    );
    expect(mapping.batches.find((b) => b.messageIds.includes(thrown as string))?.outcome).toBe('failed');
    // Neither was deleted: both come back and end in the dead-letter queue.
    await until(() => dead.counts().visible === 2, 'the failed batches in the dead-letter queue');
  });

  it('backs off when the function is throttled, and loses nothing', async () => {
    const { lambda, trace } = await consumer({ holdMs: 100, reservedConcurrency: 2 });
    const dead = plane.createQueue('dead');
    // Longer than an invocation (100 ms real = 2 simulated s), so no message is handled twice.
    const queue = plane.createQueue('throttled', {
      VisibilityTimeout: 10,
      RedrivePolicy: { deadLetterTargetArn: dead.arn, maxReceiveCount: 50 },
    });
    const ids = send(
      queue,
      Array.from({ length: 20 }, (_, i) => `m${i}`),
    );
    // MaximumConcurrency above the function's reserved concurrency: AWS warns, and throttles.
    const mapping = map({ queue, function: lambda, batchSize: 1, maximumConcurrency: 6 });
    const handled = () => new Set(traced(trace).flatMap((l) => (l.kind === 'end' ? l.ids : [])));
    await until(() => handled().size === 20 && queue.counts().notVisible === 0, 'every message');
    expect(mapping.batches.some((b) => b.outcome === 'throttled')).toBe(true);
    expect(lambda.throttles).toBeGreaterThan(0);
    expect(lambda.peakConcurrency).toBe(2);
    expect(maxOverlap(traced(trace))).toBeLessThanOrEqual(2);
    expect(handled()).toEqual(new Set(ids));
    expect(dead.counts().visible).toBe(0);
    expect(queue.counts()).toEqual({ visible: 0, notVisible: 0, delayed: 0 });
  });

  it('hands the function a message twice when SQS delivers it twice, and ends with the queue empty', async () => {
    const { lambda, trace } = await consumer({ holdMs: 200 });
    plane.sqs.duplicateRate = 1;
    const queue = plane.createQueue('twice');
    const [id] = send(queue, ['once']);
    map({ queue, function: lambda, batchSize: 1, maximumConcurrency: 2 });
    const ends = () => traced(trace).filter((l) => l.kind === 'end' && l.ids.includes(id as string));
    await until(() => ends().length === 2 && queue.counts().notVisible === 0, 'both deliveries');
    expect(queue.counts()).toEqual({ visible: 0, notVisible: 0, delayed: 0 });
  });

  it('refuses a configuration out of range with one error naming every problem', async () => {
    const { lambda } = await consumer();
    const queue = plane.createQueue('bad');
    expect(() =>
      EventSourceMapping.start({
        queue,
        function: lambda,
        clock: plane.clock,
        region: plane.region,
        batchSize: 11,
        maximumConcurrency: 1,
      }),
    ).toThrow(
      'invalid event source mapping: BatchSize 11 above 10 needs MaximumBatchingWindowInSeconds of at least 1; ScalingConfig.MaximumConcurrency 1 must be between 2 and 1000',
    );
  });
});
