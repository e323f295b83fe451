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
