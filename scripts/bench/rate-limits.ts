import type { RateLimit } from '../local/control-plane/throttle';

/**
 * Per-operation rate limits for the burst benchmark (calls per real second, token-bucket
 * burst). AWS does not publish these quotas for Auto Scaling and Run Command; the values are
 * assumptions of the order AWS documents for comparable control-plane APIs, chosen so that a
 * 1000-instance burst is limited by them. Override any with `--rate Operation=rate/burst`.
 */
export const DEFAULT_RATE_LIMITS: Readonly<Record<string, RateLimit>> = {
  SendCommand: { ratePerSecond: 10, burst: 20 },
  ListCommands: { ratePerSecond: 20, burst: 40 },
  ListCommandInvocations: { ratePerSecond: 20, burst: 40 },
  GetCommandInvocation: { ratePerSecond: 20, burst: 40 },
  DescribeInstanceInformation: { ratePerSecond: 10, burst: 20 },
  CompleteLifecycleAction: { ratePerSecond: 10, burst: 20 },
  RecordLifecycleActionHeartbeat: { ratePerSecond: 10, burst: 20 },
  DescribeAutoScalingGroups: { ratePerSecond: 10, burst: 20 },
  DescribeAutoScalingInstances: { ratePerSecond: 10, burst: 20 },
};

/** Applies `--rate Operation=rate/burst` overrides to the defaults; throws on a malformed one. */
export function rateLimitsWith(overrides: readonly string[]): Record<string, RateLimit> {
  const limits: Record<string, RateLimit> = { ...DEFAULT_RATE_LIMITS };
  for (const override of overrides) {
    const match = /^([A-Za-z]+)=(\d+(?:\.\d+)?)\/(\d+)$/.exec(override);
    if (!match?.[1] || !match[2] || !match[3] || Number(match[2]) <= 0 || Number(match[3]) < 1) {
      throw new Error(`--rate must look like SendCommand=10/20 (calls per second / burst), got ${override}`);
    }
    limits[match[1]] = { ratePerSecond: Number(match[2]), burst: Number(match[3]) };
  }
  return limits;
}

/** Seconds a token bucket needs to answer `calls` calls, starting full. */
export function bucketSeconds(limit: RateLimit | undefined, calls: number): number {
  return limit ? Math.max(0, (calls - limit.burst) / limit.ratePerSecond) : 0;
}

/**
 * The shortest possible burst: every instance needs one SendCommand (not before its agent
 * registered) and, a deploy later, one CompleteLifecycleAction. Neither call can go faster
 * than its bucket allows, so the last completion comes no sooner than this.
 */
export function burstFloorSeconds(options: {
  readonly limits: Readonly<Record<string, RateLimit>>;
  readonly instances: number;
  readonly lastRegistrationSeconds: number;
  readonly deploySeconds: number;
}): number {
  const { limits, instances } = options;
  const lastSend = Math.max(bucketSeconds(limits.SendCommand, instances), options.lastRegistrationSeconds);
  return Math.max(bucketSeconds(limits.CompleteLifecycleAction, instances), lastSend + options.deploySeconds);
}
