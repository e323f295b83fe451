import type { Logger } from '@aws-lambda-powertools/logger';
import type { AwsClients } from '../shared/clients';
import type { MetricSink } from '../shared/telemetry';
import type { Config } from './config';

/** Time, injected so waits and deadlines are testable without real sleeping. */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
  /** Uniform in [0, 1), for backoff jitter. */
  random(): number;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  random: () => Math.random(),
};

/** Everything the orchestrator's core needs from outside. */
export interface Deps {
  readonly config: Config;
  readonly clients: AwsClients;
  readonly logger: Logger;
  readonly metrics: MetricSink;
  readonly clock: Clock;
  /** Milliseconds left in this invocation (Lambda's getRemainingTimeInMillis). */
  readonly remainingMs: () => number;
}
