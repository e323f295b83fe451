/**
 * How the orchestrator's event queue and its event source mapping are set up. The CDK
 * construct and the local run both use these, so what is deployed is what is tested.
 */

/**
 * Queues the orchestrator consumes, each through its own mapping: launches (and agent waits),
 * and command status events, so completions never wait behind a burst's launches.
 */
export const QUEUE_COUNT = 2;

/**
 * Messages per batch. Up to 100 waiting instances share one look at their agents (two
 * DescribeInstanceInformation calls) and a group's status events one scan of its activities.
 */
export const QUEUE_BATCH_SIZE = 100;
/** Seconds the launch queue's mapping gathers a batch; more than 10 messages per batch needs a window. */
export const QUEUE_BATCHING_WINDOW_SECONDS = 1;
/**
 * Seconds the status queue's mapping gathers a batch: longer, because each batch reads its
 * groups' scaling activities once (to tell a command of the current wait from a stale one),
 * and in a burst that read pages through every launch in progress. Measured at 1000
 * instances (`npm run bench`): 1 s → 1288 DescribeScalingActivities calls, 5 s → 304; a
 * completion waits at most these seconds longer.
 */
export const STATUS_BATCHING_WINDOW_SECONDS = 5;
/** Receives of one message before it goes to the dead-letter queue: real errors only, never "not ready yet". */
export const MAX_RECEIVE_COUNT = 5;
/** A batch hides its messages for this many function timeouts, as AWS advises for event source mappings. */
export const VISIBILITY_TIMEOUT_FUNCTION_TIMEOUTS = 6;

/** Seconds a batch hides its messages, for a consuming function with this timeout. */
export function visibilityTimeoutSeconds(functionTimeoutSeconds: number): number {
  return functionTimeoutSeconds * VISIBILITY_TIMEOUT_FUNCTION_TIMEOUTS;
}

/** Seconds the dead-letter queue keeps a message: SQS's longest, 14 days, to look at and redrive. */
export const DEAD_LETTER_RETENTION_SECONDS = 1_209_600;
/** Seconds a message is kept: a wait lasts at most a lifecycle hook's 2 hours; a day keeps any message past that. */
export const QUEUE_RETENTION_SECONDS = 86_400;
