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
 * The queue the orchestrator consumes: launch and status events (EventBridge puts them there)
 * and launches waiting for their agent (the orchestrator puts them back with a delay). A
 * message is hidden for several function timeouts while a batch holds it, as AWS advises for
 * event source mappings, so a slow batch is not handed out twice because of it.
 */
export function eventQueue(scope: Construct, props: EventQueueProps): sqs.Queue {
  return new sqs.Queue(scope, 'EventQueue', {
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
