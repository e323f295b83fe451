import { randomBytes, randomUUID } from 'node:crypto';

/** An EC2-style instance id: `i-` and 17 hex digits. */
export function instanceId(): string {
  return `i-${randomBytes(9).toString('hex').slice(0, 17)}`;
}

/** A UUID, the shape of lifecycle action tokens, command ids, request and event ids. */
export function uuid(): string {
  return randomUUID();
}

/** ISO 8601 without milliseconds, as AWS writes event times. */
export function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Repeatable pseudo-random numbers in [0, 1) (mulberry32): the same seed, the same run. */
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
