// Section 2: burst scale-outs through the local control plane with per-operation rate
// limits, agents registering late and in turn, and the stand-in deploy: how close to the
// rate limits' floor the real handler gets, what each bootstrap costs it, how many
// executions it holds at once, and what the burst asks of the services instances share.
import { groupPath } from '../../functions/orchestrator/release-store';
import { TOP_LEVEL_SETTINGS } from '../../functions/shared/group-settings';
import { seededRandom } from '../local/control-plane/ids';
import type { CallRecord } from '../local/control-plane/server';
import type { RateLimit } from '../local/control-plane/throttle';
import { DOCUMENT_NAME, GROUP_NAME, LocalRun } from '../local/local-run';
import { burstFloorSeconds } from './rate-limits';
import { type SharedLoad, sharedLoad } from './shared-load';
import { percentile, round } from './stats';

export interface BurstSettings {
  readonly limits: Readonly<Record<string, RateLimit>>;
  /** Seconds from launch until an agent is ready to register: uniform in [min, max]. */
  readonly agentDelaySeconds: { readonly min: number; readonly max: number };
  /** Agent registrations per second; later ones wait their turn. */
  readonly agentRegistrationsPerSecond: number;
  /** The stand-in deploy's duration. */
  readonly deployMs: number;
  /** Seconds between scheduled reconciles. */
  readonly reconcileEverySeconds: number;
  /** The launch hook's heartbeat timeout: how long a launch may wait for its completion. */
  readonly heartbeatTimeoutSeconds: number;
}

export interface BurstFigures {
  readonly instances: number;
  readonly wallSeconds: number;
  /** The shortest time the rate limits, agent registrations and the deploy allow. */
  readonly floorSeconds: number;
  readonly wallOverFloor: number;
  readonly lastAgentRegisteredSeconds: number;
  /** Throttling errors the control plane answered (every one retried: see failedInvocations). */
  readonly throttled: number;
  readonly throttledByOperation: Readonly<Record<string, number>>;
  /** SendCommand answered InvalidInstanceId: sent before the agent registered. */
  readonly agentNotReady: number;
  /** Lifecycle actions not completed by CompleteLifecycleAction: ended by the hook's timeout or still open. */
  readonly lost: number;
  readonly abandoned: number;
  /**
   * Answered SSM and Auto Scaling calls per bootstrap: all of them over the instances (mean),
   * the most naming one instance (max).
   */
  readonly callsPerBootstrap: { readonly mean: number; readonly max: number };
  /** Every SSM and Auto Scaling call, throttled and refused ones too, over the instances. */
  readonly attemptsPerBootstrap: number;
  /** The function's own SQS calls (re-queued agent waits) over the instances; the mapping's polling is not among them. */
  readonly sqsCallsPerBootstrap: number;
  /** Every call by service and operation, with the error answered if any. */
  readonly callsByOperation: Readonly<Record<string, number>>;
  readonly invocations: number;
  readonly failedInvocations: number;
  /** Failed invocations by error name (the mapping's messages come back after their visibility timeout). */
  readonly failedInvocationsByError: Readonly<Record<string, number>>;
  /** Invocations Lambda refused at a concurrency limit (nothing ran; the mapping retries). */
  readonly throttledInvocations: number;
  /** Queue messages the function reported failed (batchItemFailures); each comes back after its visibility timeout. */
  readonly failedBatchItems: number;
  /** The most orchestrator executions at once: the function's, and each mapping's invocations. */
  readonly peakConcurrency: {
    readonly function: number;
    readonly launches: number;
    readonly statuses: number;
  };
  /** Seconds from an agent's registration to the SendCommand naming its instance, over the instances. */
  readonly onlineToSendSeconds: { readonly p50: number; readonly p95: number; readonly max: number };
  /** Derived from the deploys' start times: see shared-load.ts. */
  readonly sharedLoad: SharedLoad;
  /** Events the bus gave up delivering (schedule) and messages in the queue's dead-letter queue. */
  readonly deadLetters: { readonly bus: number; readonly queue: number };
  /** Sum of the handler's invocation times over the instances. */
  readonly handlerMsPerBootstrap: number;
}

const sum = (values: readonly number[]) => values.reduce((total, value) => total + value, 0);

const THROTTLING = new Set(['Throttling', 'ThrottlingException']);

function countBy<T>(items: readonly T[], key: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
}

/**
 * The calls the budget counts: SSM's and Auto Scaling's, whose account-wide rates the
 * instances share. SQS (the queue) and EC2 (the deploy tags) are reported apart.
 */
export function isBudgeted(call: Pick<CallRecord, 'service'>): boolean {
  return call.service === 'ssm' || call.service === 'autoscaling';
}

/**
 * Gives the run's group a release, as a group in operation has: its launches send the SHA,
 * and no run's output is read for the SHA it deployed.
 */
export function withRelease(run: LocalRun): void {
  run.plane.ssm.putParameter(
    `${groupPath(TOP_LEVEL_SETTINGS.releasePath.default, GROUP_NAME)}/release`,
    JSON.stringify({
      sha: '0123456789abcdef0123456789abcdef01234567',
      changedAt: new Date().toISOString(),
      reason: 'bench',
    }),
    'String',
    false,
  );
}

/**
 * Launches `instances` at once into a group behind the launch hook and waits until every
 * lifecycle action has ended. The control plane runs in real time (time scale 1): the rate
 * limits and the handler's own waits are real-time, so agent delays must be too.
 */
export async function measureBurst(instances: number, settings: BurstSettings): Promise<BurstFigures> {
  const random = seededRandom(instances);
  const { min, max } = settings.agentDelaySeconds;
  const run = await LocalRun.start({
    deploy: { durationMs: settings.deployMs },
    timeScale: 1,
    agentDelaySeconds: () => min + random() * (max - min),
    agentRegistrationsPerSecond: settings.agentRegistrationsPerSecond,
    throttle: { rateLimits: settings.limits },
    reconcileEverySeconds: settings.reconcileEverySeconds,
    hook: { heartbeatTimeout: settings.heartbeatTimeoutSeconds },
    maxSize: instances,
    // The product's default agent wait; the local function's timeout bounds it further.
    config: { agentWaitSeconds: 600 },
  });
  try {
    const started = Date.now();
    withRelease(run);
    run.scaleTo(instances);
    const records = () => [...run.records.values()];
    // Past the heartbeat timeout every open action has ended by timeout: nothing more to wait for.
    await run
      .waitFor(
        'every lifecycle action to end',
        () => run.records.size >= instances && records().every((r) => r.completedAt !== undefined),
        (settings.heartbeatTimeoutSeconds + 30) * 1000,
      )
      .catch(() => undefined);
    // The completing invocations finish just after their CompleteLifecycleAction; their time counts.
    await run.idle(60_000).catch(() => undefined);

    const all = records();
    const ended = all.flatMap((r) => (r.completedAt === undefined ? [] : [r.completedAt]));
    const wallSeconds = (Math.max(started, ...ended) - started) / 1000;
    const registered = run.plane.ssm.managedInstances().map((m) => m.registeredAt);
    const lastAgentRegisteredSeconds = (Math.max(started, ...registered) - started) / 1000;
    const floorSeconds = burstFloorSeconds({
      limits: settings.limits,
      instances,
      lastRegistrationSeconds: lastAgentRegisteredSeconds,
      deploySeconds: settings.deployMs / 1000,
    });
    const calls = run.plane.calls.filter(isBudgeted);
    const sqsCalls = run.plane.calls.filter((call) => call.service === 'sqs' && call.error === undefined);
    const answered = calls.filter((call) => call.error === undefined);
    const throttledCalls = calls.filter((call) => call.error !== undefined && THROTTLING.has(call.error));
    const { lambda, mapping, statusMapping, deadLetterQueue } = run.orchestrator;
    const invocations = lambda.invocations;
    const deploys = run.plane.ssm.commands().filter((command) => command.documentName === DOCUMENT_NAME);
    const firstSend = new Map<string, number>();
    for (const command of deploys) {
      for (const id of command.instanceIds) {
        firstSend.set(id, Math.min(firstSend.get(id) ?? Number.POSITIVE_INFINITY, command.requestedAt));
      }
    }
    const onlineToSend = run.plane.ssm.managedInstances().flatMap((managed) => {
      const sent = firstSend.get(managed.id);
      return sent === undefined ? [] : [(sent - managed.registeredAt) / 1000];
    });
    const deployStarts = deploys.flatMap((command) =>
      command.invocations.flatMap((invocation) =>
        invocation.startedAt === undefined ? [] : [invocation.startedAt],
      ),
    );
    const queued = deadLetterQueue.counts();
    return {
      instances,
      wallSeconds: round(wallSeconds, 1),
      floorSeconds: round(floorSeconds, 1),
      wallOverFloor: round(wallSeconds / floorSeconds),
      lastAgentRegisteredSeconds: round(lastAgentRegisteredSeconds, 1),
      throttled: throttledCalls.length,
      throttledByOperation: countBy(throttledCalls, (call) => call.operation),
      agentNotReady: calls.filter((call) => call.error === 'InvalidInstanceId').length,
      lost: all.filter((r) => r.completedBy !== 'api').length,
      abandoned: all.filter((r) => r.completedBy === 'api' && r.result === 'ABANDON').length,
      callsPerBootstrap: {
        mean: round(answered.length / all.length),
        max: Math.max(
          0,
          ...all.map(
            (r) =>
              run.plane.callsFor(r.id).filter((call) => isBudgeted(call) && call.error === undefined).length,
          ),
        ),
      },
      attemptsPerBootstrap: round(calls.length / all.length),
      sqsCallsPerBootstrap: round(sqsCalls.length / all.length),
      callsByOperation: countBy(
        run.plane.calls,
        (call) => `${call.service} ${call.operation}${call.error ? ` (${call.error})` : ''}`,
      ),
      invocations: invocations.length,
      failedInvocations: invocations.filter((invocation) => invocation.error).length,
      failedInvocationsByError: countBy(
        invocations.flatMap((invocation) => (invocation.error ? [invocation.error] : [])),
        (error) => error.name,
      ),
      throttledInvocations: lambda.throttles,
      failedBatchItems: sum(
        [...mapping.batches, ...statusMapping.batches]
          .filter((batch) => batch.outcome === 'partial')
          .map((batch) => batch.failedItems.length),
      ),
      peakConcurrency: {
        function: lambda.peakConcurrency,
        launches: mapping.peakConcurrency,
        statuses: statusMapping.peakConcurrency,
      },
      onlineToSendSeconds: {
        p50: round(percentile(onlineToSend, 50), 1),
        p95: round(percentile(onlineToSend, 95), 1),
        max: round(Math.max(0, ...onlineToSend), 1),
      },
      sharedLoad: sharedLoad(deployStarts),
      deadLetters: {
        bus: run.plane.bus.deadLetters.length,
        queue: queued.visible + queued.notVisible + queued.delayed,
      },
      handlerMsPerBootstrap: round(sum(invocations.map((i) => i.ms)) / all.length, 1),
    };
  } finally {
    await run.stop();
  }
}
