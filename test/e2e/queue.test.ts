import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SQSEvent } from 'aws-lambda';
import { AGENT_WAIT_KIND, waitMessage } from '../../functions/orchestrator/agent-wait';
import { LAUNCH_DETAIL_TYPE, SCHEDULED_DETAIL_TYPE } from '../../functions/shared/event-patterns';
import { MAX_RECEIVE_COUNT } from '../../functions/shared/event-queue';
import { TOP_LEVEL_SETTINGS } from '../../functions/shared/group-settings';
import type { AwsEvent } from '../../scripts/local/control-plane/event-bus';
import type { LocalRun } from '../../scripts/local/local-run';
import { commandsPerInstance, localRuns } from './support';

// Launches wait for their agents in the orchestrator's queue, not in an invocation: these run
// bursts through the queue and its event source mapping with the fast stand-in deploy.
jest.setTimeout(60_000);

const start = localRuns();
const EMPTY = { visible: 0, notVisible: 0, delayed: 0 };

/** Answered calls of `operation`, by instance named. */
function callsPerInstance(local: LocalRun, operation: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const call of local.plane.calls) {
    if (call.operation !== operation || call.error) continue;
    for (const id of call.instanceIds) counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

const describeCalls = (local: LocalRun) =>
  local.plane.calls.filter((call) => call.operation === 'DescribeInstanceInformation');

/** Launch events the bus delivered, by instance: the lifecycle action tokens. */
function launchTokens(local: LocalRun): Map<string, string> {
  return new Map(
    local.plane.bus.deliveries
      .filter(({ event }) => event['detail-type'] === LAUNCH_DETAIL_TYPE)
      .map(({ event }) => [
        event.detail.EC2InstanceId as string,
        event.detail.LifecycleActionToken as string,
      ]),
  );
}

/** The instances an invocation's queue messages wait for (launch events and agent waits), each once. */
function waitingIn(event: unknown): Set<string> {
  const ids = new Set<string>();
  for (const record of (event as Partial<SQSEvent>).Records ?? []) {
    let body: { kind?: string; instanceId?: string; 'detail-type'?: string; detail?: AwsEvent['detail'] };
    try {
      body = JSON.parse(record.body);
    } catch {
      continue;
    }
    if (body.kind === AGENT_WAIT_KIND && body.instanceId) ids.add(body.instanceId);
    if (body['detail-type'] === LAUNCH_DETAIL_TYPE) ids.add(body.detail?.EC2InstanceId as string);
  }
  return ids;
}

const verdicts = (local: LocalRun) => [...local.records.values()].map((r) => [r.result, r.completedBy]);

describe('agent waits in the queue', () => {
  it('a burst whose agents register late and in order: one look per batch, one command each, all CONTINUE', async () => {
    // 30 agents, the n-th ready 2 + n simulated seconds after launch, registering one a second.
    const local = await start({
      deploy: { durationMs: 100 },
      timeScale: 20,
      maxSize: 30,
      agentDelaySeconds: (_, index) => 2 + index,
      agentRegistrationsPerSecond: 1,
      duplicateDeliveries: { rate: 0 },
    });

    local.scaleTo(30);
    await local.waitFor('30 instances InService', () => local.settled(), 40_000);
    await drained(local);

    expect(verdicts(local)).toEqual(Array(30).fill(['CONTINUE', 'api']));
    expect(local.plane.calls.filter((c) => c.operation === 'SendCommand' && c.error)).toEqual([]);
    expect([...commandsPerInstance(local).values()]).toEqual(Array(30).fill(1));

    // Each invocation looks at all its waiting instances together: one call per 50 of them.
    const looks = describeCalls(local);
    const waiting = local.orchestrator.lambda.invocations.map((i) => waitingIn(i.event).size);
    const rounds = waiting.reduce((sum, n) => sum + Math.ceil(n / 50), 0);
    const instanceLooks = looks.reduce((sum, call) => sum + call.instanceIds.length, 0);
    expect(looks.length).toBeLessThanOrEqual(rounds);
    // Waits did share looks: one call per wait would make as many calls as instance looks.
    expect(looks.length).toBeLessThan(instanceLooks / 2);
    // The late agents were looked at more than once, so the waits went back to the queue.
    expect(instanceLooks).toBeGreaterThan(30);

    expect(local.orchestrator.deadLetterQueue.counts()).toEqual(EMPTY);
    expect(local.plane.bus.deadLetters).toEqual([]);
  });

  it('every message delivered twice: one verdict per instance, all CONTINUE, nothing left over', async () => {
    const local = await start({
      deploy: { durationMs: 1_000 },
      timeScale: 20,
      agentDelaySeconds: (_, index) => 5 + 5 * index,
      duplicateDeliveries: { rate: 1, seed: 7 },
    });

    local.scaleTo(4);
    await local.waitFor('4 instances InService', () => local.settled(), 30_000);
    await local.plane.bus.idle();
    // The copies of status events find the action ended: nothing fails, nothing comes back.
    await drained(local);

    // Every message came twice (the same message id in a later receive).
    const received = local.orchestrator.mapping.batches.flatMap((b) => b.messageIds);
    expect(received.length).toBeGreaterThanOrEqual(2 * new Set(received).size);

    const tokens = launchTokens(local);
    for (const command of local.plane.ssm.commands()) {
      const instanceId = command.invocations[0]?.instanceId ?? '';
      expect(command.parameters.lifecycleActionToken).toEqual([tokens.get(instanceId)]);
    }
    // Copies of one wait handled at the same moment in different executions may each send
    // (on a real instance all but one exit 13, with no verdict); a later copy finds the
    // command. So at most one command per execution the mapping runs at once.
    expect(Math.max(...commandsPerInstance(local).values())).toBeLessThanOrEqual(
      Number(TOP_LEVEL_SETTINGS.maxConcurrency.default),
    );
    expect([...callsPerInstance(local, 'CompleteLifecycleAction').values()]).toEqual([1, 1, 1, 1]);
    expect(verdicts(local)).toEqual(Array(4).fill(['CONTINUE', 'api']));
    expect(local.orchestrator.mapping.batches.filter((b) => b.outcome !== 'deleted')).toEqual([]);
    expect(local.orchestrator.deadLetterQueue.counts()).toEqual(EMPTY);
  });

  it('a copy of a wait delivered after its command was sent sends nothing more', async () => {
    const local = await start({
      deploy: { durationMs: 2_000 },
      timeScale: 20,
      agentDelaySeconds: 0,
      duplicateDeliveries: { rate: 0 },
    });

    local.scaleTo(1);
    await local.waitFor('the deploy to start', () => local.plane.ssm.commands().length === 1, 10_000);
    const [instanceId, token] = [...launchTokens(local)][0] ?? ['', ''];
    const now = Date.now();
    // The wait's message as the orchestrator writes it, a few looks in: SQS hands out a copy late.
    const copy = {
      instanceId,
      groupName: 'web',
      hook: 'selfdeploy-launch',
      token,
      place: 'AutoScalingGroup' as const,
      waitStart: now - 5_000,
      attempt: 3,
      deadline: now + 25_000,
      lastHeartbeat: now - 5_000,
    };
    local.orchestrator.queue.send(waitMessage(copy), {}, 0);
    await local.waitFor('the copy handled', () => local.orchestrator.queue.counts().visible === 0, 5_000);
    await local.waitFor('the instance InService', () => local.settled(), 20_000);
    // And once more after the action has ended.
    const lookedBefore = describeCalls(local).length;
    local.orchestrator.queue.send(waitMessage({ ...copy, attempt: 4 }), {}, 0);
    await local.waitFor('the late copy looked at', () => describeCalls(local).length > lookedBefore, 5_000);
    await drained(local);

    expect([...commandsPerInstance(local).values()]).toEqual([1]);
    expect([...callsPerInstance(local, 'CompleteLifecycleAction').values()]).toEqual([1]);
    expect(verdicts(local)).toEqual([['CONTINUE', 'api']]);
    expect(local.orchestrator.deadLetterQueue.counts()).toEqual(EMPTY);
  });

  it('a batch with a failing item: the rest complete; it alone is retried, then dead-lettered, and nothing is sent for it', async () => {
    // A 10 s function timeout hides a failed message for 60 s (simulated) before each retry.
    const local = await start({
      deploy: { durationMs: 100 },
      timeScale: 50,
      functionTimeoutSeconds: 10,
      agentDelaySeconds: (_, index) => 5 + 3 * index,
      duplicateDeliveries: { rate: 0 },
    });
    const forged = 'i-0badc0ffee0000001';
    const now = Date.now();
    const hostile = [
      // Anyone allowed to send to the queue may: a wait for a group selfdeploy does not manage,
      waitMessage({
        instanceId: forged,
        groupName: 'intruders',
        hook: 'selfdeploy-launch',
        token: '8e3f1a52-4c1d-4a7e-9a0b-2f6c1d3e5b70',
        place: 'AutoScalingGroup',
        waitStart: now,
        attempt: 0,
        deadline: now + 60_000,
        lastHeartbeat: now,
      }),
      // and a body that is not JSON.
      'not json {',
    ];

    local.scaleTo(6);
    const sent = hostile.map((body) => local.orchestrator.queue.send(body, {}, 0).id);
    await local.waitFor('6 instances InService', () => local.settled(), 30_000);
    await local.waitFor(
      'both bad messages dead-lettered',
      () => local.orchestrator.deadLetterQueue.counts().visible === 2,
      30_000,
    );

    await drained(local);
    expect(verdicts(local)).toEqual(Array(6).fill(['CONTINUE', 'api']));
    const { batches } = local.orchestrator.mapping;
    // Reported item by item: the batches they were in deleted everything else.
    const withBad = batches.filter((b) => b.messageIds.some((id) => sent.includes(id)));
    expect(withBad.every((b) => b.outcome === 'partial')).toBe(true);
    expect(withBad.every((b) => b.failedItems.every((id) => sent.includes(id)))).toBe(true);
    expect(withBad.some((b) => b.messageIds.length > b.failedItems.length)).toBe(true);
    // Received MAX_RECEIVE_COUNT times each, then moved on the next receive.
    for (const id of sent) {
      expect(withBad.filter((b) => b.messageIds.includes(id))).toHaveLength(MAX_RECEIVE_COUNT);
    }
    expect(batches.filter((b) => b.outcome === 'failed' || b.outcome === 'throttled')).toEqual([]);
    for (const operation of [
      'SendCommand',
      'ListCommands',
      'CompleteLifecycleAction',
      'RecordLifecycleActionHeartbeat',
    ]) {
      expect(
        local.plane.calls.filter((c) => c.operation === operation && c.instanceIds.includes(forged)),
      ).toEqual([]);
    }
  });

  it('an agent that never registers: the wait stops at its deadline, the reconciler counts it stuck, the hook times out', async () => {
    // agentWaitSeconds is real time in the function (1 s = 20 simulated); the hook's 120 s
    // timeout lasts 6 real seconds.
    const local = await start({
      deploy: { durationMs: 100 },
      timeScale: 20,
      hook: { heartbeatTimeout: 120, defaultResult: 'ABANDON' },
      agentDelaySeconds: (_, index) => (index === 0 ? undefined : 5),
      config: { agentWaitSeconds: 1 },
      duplicateDeliveries: { rate: 0 },
    });

    local.scaleTo(1);
    await local.waitFor('the first instance', () => local.records.size === 1, 5_000);
    const [absent] = [...local.records.keys()] as [string];
    const looksAt = () => callsPerInstance(local, 'DescribeInstanceInformation').get(absent) ?? 0;
    await local.waitFor('the wait left to the reconciler', () => logged(local, absent), 10_000);
    const looks = looksAt();
    // Looked at again and again while it lasted. (The function's deadline runs on the wall
    // clock and re-look delays on the simulated one, so here the last delays are the 1 s
    // minimum: at most about one look per simulated second of the 20.)
    expect(looks).toBeGreaterThanOrEqual(3);
    expect(looks).toBeLessThanOrEqual(25);
    // Nothing comes back: past a longest re-look (15 s) the queue is empty and no new look.
    await local.plane.clock.sleep(40);
    expect(local.orchestrator.queue.counts()).toEqual(EMPTY);
    expect(looksAt()).toBe(looks);

    await local.orchestrator.reconcile();
    const reconciled = local.orchestrator.lambda.invocations.find(
      (i) => (i.event as AwsEvent)['detail-type'] === SCHEDULED_DETAIL_TYPE,
    );
    expect(reconciled?.result).toMatchObject({
      kind: 'reconcile',
      result: { groups: { web: { waiting: 1, stuck: 1, instances: { [absent]: 'agent-not-ready' } } } },
    });
    expect(local.records.get(absent)?.completedBy).toBeUndefined();

    await local.waitFor('a replacement InService', () => local.settled(), 30_000);
    expect(local.records.get(absent)).toMatchObject({ result: 'ABANDON', completedBy: 'timeout' });
    expect(local.records.get(absent)?.terminatedAt).toBeDefined();
    expect(commandsPerInstance(local).has(absent)).toBe(false);
    expect(looksAt()).toBe(looks + 1); // the reconciler's own look
    expect([...local.records.values()].at(-1)).toMatchObject({ result: 'CONTINUE', completedBy: 'api' });
    expect(local.orchestrator.deadLetterQueue.counts()).toEqual(EMPTY);
  });

  it("the mapping's concurrency limit reached: at most 2 executions, none throttled, nothing lost", async () => {
    const local = await start({
      deploy: { durationMs: 100 },
      timeScale: 20,
      maxSize: 30,
      maxConcurrency: 2,
      reservedConcurrency: 2,
      agentDelaySeconds: (_, index) => 1 + (index % 5),
      duplicateDeliveries: { rate: 0 },
    });

    local.scaleTo(30);
    await local.waitFor('30 instances InService', () => local.settled(), 40_000);
    await drained(local);

    const { mapping, lambda } = local.orchestrator;
    expect(mapping.peakConcurrency).toBe(2);
    expect(lambda.peakConcurrency).toBeLessThanOrEqual(2);
    expect(lambda.throttles).toBe(0);
    expect(mapping.batches.filter((b) => b.outcome !== 'deleted')).toEqual([]);
    expect(verdicts(local)).toEqual(Array(30).fill(['CONTINUE', 'api']));
    expect([...commandsPerInstance(local).values()]).toEqual(Array(30).fill(1));
    expect(local.orchestrator.deadLetterQueue.counts()).toEqual(EMPTY);
  });

  it('reserved concurrency shared with the reconciler: throttled batches come back, nothing lost', async () => {
    // A 10 s function timeout hides a throttled batch for 60 s (simulated) before it comes back.
    const local = await start({
      deploy: { durationMs: 100 },
      timeScale: 20,
      functionTimeoutSeconds: 10,
      maxConcurrency: 2,
      reservedConcurrency: 2,
      agentDelaySeconds: 5,
      duplicateDeliveries: { rate: 0 },
    });

    // Two reconciles hold both reserved executions (their cold starts included) as the burst's
    // launch events reach the queue.
    const reconciles = [local.orchestrator.reconcile(), local.orchestrator.reconcile()];
    local.scaleTo(10);
    await Promise.all(reconciles);
    await local.waitFor('10 instances InService', () => local.settled(), 40_000);
    await drained(local);

    const { mapping, lambda } = local.orchestrator;
    expect(mapping.batches.some((b) => b.outcome === 'throttled')).toBe(true);
    expect(mapping.batches.filter((b) => b.outcome === 'failed')).toEqual([]);
    expect(lambda.throttles).toBeGreaterThan(0);
    expect(lambda.peakConcurrency).toBeLessThanOrEqual(2);
    expect(verdicts(local)).toEqual(Array(10).fill(['CONTINUE', 'api']));
    expect([...commandsPerInstance(local).values()]).toEqual(Array(10).fill(1));
    expect(local.orchestrator.deadLetterQueue.counts()).toEqual(EMPTY);
  });
});

function isEmpty(counts: typeof EMPTY): boolean {
  return counts.visible + counts.notVisible + counts.delayed === 0;
}

/** Waits until the orchestrator's queue is empty and no batch is running (its messages deleted). */
function drained(local: LocalRun): Promise<void> {
  const { queue, mapping } = local.orchestrator;
  return local.waitFor(
    'the queue drained',
    () => isEmpty(queue.counts()) && mapping.concurrency === 0,
    10_000,
  );
}

/** Whether the function logged leaving `instanceId`'s wait to the reconciler. */
function logged(local: LocalRun, instanceId: string): boolean {
  const log = readFileSync(join(local.dir, 'orchestrator.log'), 'utf8');
  return log
    .split('\n')
    .some((line) => line.includes('leaving this instance to the reconciler') && line.includes(instanceId));
}
