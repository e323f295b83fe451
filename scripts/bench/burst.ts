// Section 2: burst scale-outs through the local control plane with per-operation rate
// limits, agents registering late and in turn, and the stand-in deploy: how close to the
// rate limits' floor the real handler gets, and what each bootstrap costs it.
import type { RateLimit } from '../local/control-plane/throttle';
import { LocalRun } from '../local/local-run';
import { burstFloorSeconds } from './rate-limits';
import { round } from './stats';

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
  /** Answered API calls per bootstrap: all of them over the instances (mean), the most naming one instance (max). */
  readonly callsPerBootstrap: { readonly mean: number; readonly max: number };
  /** Every API call, throttled and refused ones too, over the instances. */
  readonly attemptsPerBootstrap: number;
  readonly callsByOperation: Readonly<Record<string, number>>;
  readonly invocations: number;
  readonly failedInvocations: number;
  /** Failed invocations by error name (each retried by the event bus, as Lambda retries async invocations). */
  readonly failedInvocationsByError: Readonly<Record<string, number>>;
  readonly deadLetters: number;
  /** Sum of the handler's invocation times over the instances. */
  readonly handlerMsPerBootstrap: number;
}

const sum = (values: readonly number[]) => values.reduce((total, value) => total + value, 0);

const THROTTLING = new Set(['Throttling', 'ThrottlingException']);

/** Repeatable pseudo-random numbers in [0, 1) (mulberry32), so runs see the same agent delays. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function countBy<T>(items: readonly T[], key: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
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
    // The completion invocations finish just after their CompleteLifecycleAction.
    await Promise.race([run.plane.bus.idle(), new Promise((resolve) => setTimeout(resolve, 30_000))]);

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
    const calls = run.plane.calls;
    const answered = calls.filter((call) => call.error === undefined);
    const throttledCalls = calls.filter((call) => call.error !== undefined && THROTTLING.has(call.error));
    const invocations = run.orchestrator.lambda.invocations;
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
          ...all.map((r) => run.plane.callsFor(r.id).filter((call) => call.error === undefined).length),
        ),
      },
      attemptsPerBootstrap: round(calls.length / all.length),
      callsByOperation: countBy(calls, (call) => `${call.operation}${call.error ? ` (${call.error})` : ''}`),
      invocations: invocations.length,
      failedInvocations: invocations.filter((invocation) => invocation.error).length,
      failedInvocationsByError: countBy(
        invocations.flatMap((invocation) => (invocation.error ? [invocation.error] : [])),
        (error) => error.name,
      ),
      deadLetters: run.plane.bus.deadLetters.length,
      handlerMsPerBootstrap: round(sum(invocations.map((i) => i.ms)) / all.length, 1),
    };
  } finally {
    await run.stop();
  }
}
