import type { EventPattern } from '../../../functions/shared/event-patterns';

/**
 * EventBridge's matching for the pattern subset selfdeploy's rules use: every key of the
 * pattern must be present in the event; a list matches when the event's value (or, for
 * an array value, any of its elements) equals one of the listed strings; an object
 * matches the event's nested object recursively.
 */
export function matchesPattern(pattern: EventPattern, event: unknown): boolean {
  if (typeof event !== 'object' || event === null) return false;
  const fields = event as Record<string, unknown>;
  return Object.entries(pattern).every(([key, expected]) => {
    const actual = fields[key];
    if (isValueList(expected)) {
      const values = Array.isArray(actual) ? actual : [actual];
      return values.some((value) => typeof value === 'string' && expected.includes(value));
    }
    return matchesPattern(expected, actual);
  });
}

function isValueList(value: readonly string[] | EventPattern): value is readonly string[] {
  return Array.isArray(value);
}
