import { Duration, aws_sqs as sqs } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import {
  MAX_RECEIVE_COUNT,
  QUEUE_RETENTION_SECONDS,
  visibilityTimeoutSeconds,
} from '../functions/shared/event-queue';

/** What the event queue is built from. */
export interface EventQueueProps {
  /** Where a message goes after MAX_RECEIVE_COUNT failed receives. */
  readonly deadLetterQueue: sqs.IQueue;
  /** The consuming function's timeout. */
  readonly functionTimeout: Duration;
}

/**
 * A queue the orchestrator consumes. There are two, each with its own event source mapping:
 * `EventQueue` takes launch events (EventBridge puts them there) and launches waiting for
 * their agent (the orchestrator puts them back with a delay); `StatusQueue` takes command
 * status events, so completions never queue behind a burst's launches, whose SendCommand
 * rate they would otherwise wait on. A message is hidden for several function timeouts while
 * a batch holds it, as AWS advises for event source mappings, so a slow batch is not handed
 * out twice because of it.
 */
export function eventQueue(
  scope: Construct,
  id: 'EventQueue' | 'StatusQueue',
  props: EventQueueProps,
): sqs.Queue {
  return new sqs.Queue(scope, id, {
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    visibilityTimeout: queueVisibilityTimeout(props.functionTimeout),
    retentionPeriod: Duration.seconds(QUEUE_RETENTION_SECONDS),
    deadLetterQueue: { queue: props.deadLetterQueue, maxReceiveCount: MAX_RECEIVE_COUNT },
  });
}

/** How long a batch hides its messages: several timeouts of the consuming function. */
export function queueVisibilityTimeout(functionTimeout: Duration): Duration {
  return Duration.seconds(visibilityTimeoutSeconds(functionTimeout.toSeconds()));
}
