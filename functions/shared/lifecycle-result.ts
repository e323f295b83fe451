/** The results a lifecycle action can end with; defined once for the orchestrator, the infra and the stand-in. */
export const LIFECYCLE_RESULTS = ['CONTINUE', 'ABANDON'] as const;

/** CONTINUE lets the instance in; ABANDON has Auto Scaling replace it. */
export type LifecycleResult = (typeof LIFECYCLE_RESULTS)[number];

/** Whether `value` is a lifecycle result. */
export function isLifecycleResult(value: string): value is LifecycleResult {
  return (LIFECYCLE_RESULTS as readonly string[]).includes(value);
}
