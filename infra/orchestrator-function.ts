import * as path from 'node:path';
import {
  Duration,
  aws_lambda_event_sources as eventSources,
  type aws_iam as iam,
  type aws_logs as logs,
  aws_lambda_nodejs as nodejs,
  Stack,
  type aws_sqs as sqs,
  Validations,
} from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { ConfigInput } from '../functions/orchestrator/config';
import {
  QUEUE_BATCH_SIZE,
  QUEUE_BATCHING_WINDOW_SECONDS,
  STATUS_BATCHING_WINDOW_SECONDS,
} from '../functions/shared/event-queue';
import {
  assertLocalEsbuild,
  ORCHESTRATOR_ARCHITECTURE,
  ORCHESTRATOR_BUNDLING,
  ORCHESTRATOR_ENTRY,
  ORCHESTRATOR_RUNTIME,
  PROJECT_ROOT,
} from './bundling';

/** What the orchestrator function is built from. */
export interface OrchestratorFunctionProps {
  /** SELFDEPLOY_CONFIG (group names may be tokens). */
  readonly config: ConfigInput;
  readonly role: iam.IRole;
  readonly logGroup: logs.ILogGroup;
  readonly timeout: Duration;
  /** Async invocations older than this are dropped: their lifecycle actions have ended. */
  readonly maxEventAge: Duration;
  /** Where events go after Lambda's own retries. */
  readonly deadLetterQueue: sqs.IQueue;
  /** The queues the function consumes in batches, each through a mapping of its own. */
  readonly queues: { readonly launches: sqs.IQueue; readonly statuses: sqs.IQueue };
  /** Each mapping's MaximumConcurrency, and the function's reserved concurrency if any. */
  readonly concurrency: { readonly maxConcurrency: number; readonly reserved?: number };
}

/** The orchestrator function, bundled locally with esbuild from functions/orchestrator. */
export function orchestratorFunction(
  scope: Construct,
  props: OrchestratorFunctionProps,
): nodejs.NodejsFunction {
  assertLocalEsbuild();
  const fn = new nodejs.NodejsFunction(scope, 'Function', {
    description: 'selfdeploy orchestrator: deploys new Auto Scaling instances before they go into service',
    entry: ORCHESTRATOR_ENTRY,
    handler: 'handler',
    projectRoot: PROJECT_ROOT,
    depsLockFilePath: path.join(PROJECT_ROOT, 'package-lock.json'),
    runtime: ORCHESTRATOR_RUNTIME,
    architecture: ORCHESTRATOR_ARCHITECTURE,
    bundling: ORCHESTRATOR_BUNDLING,
    memorySize: 256,
    timeout: props.timeout,
    role: props.role,
    logGroup: props.logGroup,
    environment: { SELFDEPLOY_CONFIG: Stack.of(scope).toJsonString(props.config) },
    // Every action is idempotent, so Lambda's own retries are safe; after them, the event
    // goes to the dead-letter queue and the reconciler repairs what it missed.
    retryAttempts: 2,
    maxEventAge: props.maxEventAge,
    deadLetterQueue: props.deadLetterQueue,
    ...(props.concurrency.reserved !== undefined && {
      reservedConcurrentExecutions: props.concurrency.reserved,
    }),
  });
  // Each failed message is reported on its own (batchItemFailures); "not ready yet" is never a
  // failure (the wait is put back as a new message), so only real errors reach the DLQ.
  for (const [queue, windowSeconds] of [
    [props.queues.launches, QUEUE_BATCHING_WINDOW_SECONDS],
    [props.queues.statuses, STATUS_BATCHING_WINDOW_SECONDS],
  ] as const) {
    fn.addEventSource(
      new eventSources.SqsEventSource(queue, {
        batchSize: QUEUE_BATCH_SIZE,
        maxBatchingWindow: Duration.seconds(windowSeconds),
        reportBatchItemFailures: true,
        maxConcurrency: props.concurrency.maxConcurrency,
      }),
    );
  }
  Validations.of(fn).acknowledge({
    id: 'AwsSolutions-L1',
    reason: 'Pinned to Node.js 22, the runtime the orchestrator and its bundle are tested on.',
  });
  return fn;
}
