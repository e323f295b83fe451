/** A token bucket: `ratePerSecond` sustained, `burst` at once. */
export interface RateLimit {
  readonly ratePerSecond: number;
  readonly burst: number;
}

export interface ThrottleOptions {
  /** Per-operation limits, keyed by operation name (e.g. `SendCommand`). */
  readonly rateLimits?: Readonly<Record<string, RateLimit>>;
  /** Fraction (0–1) of all calls refused at random, whatever the buckets say. @default 0 */
  readonly fraction?: number;
  /** Source of randomness for `fraction`, replaceable for repeatable runs. @default Math.random */
  readonly random?: () => number;
}

/**
 * Decides whether a call is throttled, the way AWS answers "Rate exceeded": per-operation
 * token buckets, plus an optional random fraction for fault injection.
 */
export class Throttle {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();
  /** Calls refused so far, per operation. */
  public readonly refused = new Map<string, number>();

  public constructor(private readonly options: ThrottleOptions = {}) {}

  /** True when this call must be answered with a throttling error. */
  public refuse(operation: string): boolean {
    const refused = this.#randomlyRefused() || this.#bucketEmpty(operation);
    if (refused) this.refused.set(operation, (this.refused.get(operation) ?? 0) + 1);
    return refused;
  }

  #randomlyRefused(): boolean {
    const fraction = this.options.fraction ?? 0;
    return fraction > 0 && (this.options.random ?? Math.random)() < fraction;
  }

  #bucketEmpty(operation: string): boolean {
    const limit = this.options.rateLimits?.[operation];
    if (!limit) return false;
    const now = Date.now();
    const bucket = this.#buckets.get(operation) ?? { tokens: limit.burst, at: now };
    bucket.tokens = Math.min(limit.burst, bucket.tokens + ((now - bucket.at) / 1000) * limit.ratePerSecond);
    bucket.at = now;
    this.#buckets.set(operation, bucket);
    if (bucket.tokens < 1) return true;
    bucket.tokens -= 1;
    return false;
  }
}
