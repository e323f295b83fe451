import { join } from 'node:path';
import type { ConfigInput } from '../../functions/orchestrator/config';
import {
  commandStatusPattern,
  launchLifecyclePattern,
  SCHEDULED_DETAIL_TYPE,
} from '../../functions/shared/event-patterns';
import {
  DEAD_LETTER_RETENTION_SECONDS,
  MAX_RECEIVE_COUNT,
  QUEUE_BATCH_SIZE,
  QUEUE_BATCHING_WINDOW_SECONDS,
  QUEUE_RETENTION_SECONDS,
  STATUS_BATCHING_WINDOW_SECONDS,
  visibilityTimeoutSeconds,
} from '../../functions/shared/event-queue';
import { TOP_LEVEL_SETTINGS } from '../../functions/shared/group-settings';
import type { ControlPlane } from './control-plane/control-plane';
import type { Queue } from './control-plane/sqs';
import { EventSourceMapping } from './event-source-mapping';
import { LocalLambda } from './lambda';

/** The function's name, as Lambda's Invoke API (and the CLI) reaches it. */
export const FUNCTION_NAME = 'selfdeploy-orchestrator';

/** The orchestrator handler, unmodified: what the CDK construct deploys. */
export const HANDLER_MODULE = join(__dirname, '..', '..', 'functions', 'orchestrator', 'handler.ts');

export interface LocalOrchestratorOptions {
  readonly plane: ControlPlane;
  /** SELFDEPLOY_CONFIG as the CDK construct would set it, but for the queue's URL, which this sets. */
  readonly config: Omit<ConfigInput, 'waitQueueUrl'>;
  /** The function's log. */
  readonly logFile: string;
  /** Real seconds an invocation may run. @default 300, the CDK construct's default function timeout */
  readonly timeoutSeconds?: number;
  /** Simulated seconds between scheduled reconciles; undefined: only when `reconcile()` is called. */
  readonly reconcileEverySeconds?: number;
  /** The event source mapping's MaximumConcurrency. @default the construct's default */
  readonly maxConcurrency?: number;
  /** The function's reserved concurrency. @default none */
  readonly reservedConcurrency?: number;
}

/**
 * selfdeploy deployed against a local control plane as the CDK construct deploys it: the
 * handler with SELFDEPLOY_CONFIG and the SDK endpoint variables; its queue (and dead-letter
 * queue) fed by the launch and command-status rules with the very patterns the CDK rules
 * use; the event source mapping with the construct's batch size, window and concurrency; and
 * the reconcile schedule.
 */
export class LocalOrchestrator {
  #stopSchedule: () => void = () => {};
  #config: Omit<ConfigInput, 'waitQueueUrl'>;
  readonly #removeRules: (() => void)[] = [];

  private constructor(
    public readonly lambda: LocalLambda,
    private readonly plane: ControlPlane,
    /** The queue of launch events and agent waits. */
    public readonly queue: Queue,
    /** The queue of command status events. */
    public readonly statusQueue: Queue,
    /** Where either queue's messages go after MAX_RECEIVE_COUNT failed receives. */
    public readonly deadLetterQueue: Queue,
    /** The launch queue's mapping. */
    public readonly mapping: EventSourceMapping,
    /** The status queue's mapping. */
    public readonly statusMapping: EventSourceMapping,
    config: Omit<ConfigInput, 'waitQueueUrl'>,
  ) {
    this.#config = config;
  }

  /** SELFDEPLOY_CONFIG as the function has it now, but for the queue's URL. */
  public get config(): Omit<ConfigInput, 'waitQueueUrl'> {
    return this.#config;
  }

  public static async start(options: LocalOrchestratorOptions): Promise<LocalOrchestrator> {
    const { plane } = options;
    const timeoutSeconds = options.timeoutSeconds ?? 300;
    const deadLetterQueue = plane.createQueue('selfdeploy-dead-letters', {
      MessageRetentionPeriod: DEAD_LETTER_RETENTION_SECONDS,
    });
    const queueAttributes = {
      VisibilityTimeout: visibilityTimeoutSeconds(timeoutSeconds),
      MessageRetentionPeriod: QUEUE_RETENTION_SECONDS,
      RedrivePolicy: { deadLetterTargetArn: deadLetterQueue.arn, maxReceiveCount: MAX_RECEIVE_COUNT },
    };
    const queue = plane.createQueue('selfdeploy-events', queueAttributes);
    const statusQueue = plane.createQueue('selfdeploy-statuses', queueAttributes);
    const config: ConfigInput = { ...options.config, waitQueueUrl: queue.url };
    const lambda = await LocalLambda.start({
      modulePath: HANDLER_MODULE,
      env: functionEnv(plane, config),
      timeoutSeconds,
      logFile: options.logFile,
      clock: plane.clock,
      ...(options.reservedConcurrency !== undefined && { reservedConcurrency: options.reservedConcurrency }),
    });
    // One mapping per queue, each as the construct sets it up.
    const mappingOf = (consumed: Queue, windowSeconds: number) =>
      EventSourceMapping.start({
        queue: consumed,
        function: lambda,
        clock: plane.clock,
        region: plane.region,
        batchSize: QUEUE_BATCH_SIZE,
        maximumBatchingWindowInSeconds: windowSeconds,
        maximumConcurrency: options.maxConcurrency ?? Number(TOP_LEVEL_SETTINGS.maxConcurrency.default),
        reportBatchItemFailures: true,
      });
    const orchestrator = new LocalOrchestrator(
      lambda,
      plane,
      queue,
      statusQueue,
      deadLetterQueue,
      mappingOf(queue, QUEUE_BATCHING_WINDOW_SECONDS),
      mappingOf(statusQueue, STATUS_BATCHING_WINDOW_SECONDS),
      options.config,
    );
    // EventBridge puts each matching event on its rule's queue, the whole event as the message body.
    const onto = (target: Queue) => async (event: unknown) => {
      target.send(JSON.stringify(event), {}, undefined);
    };
    orchestrator.#removeRules.push(
      // `aws lambda invoke --function-name selfdeploy-orchestrator` reaches this very function.
      plane.functions.register(FUNCTION_NAME, lambda),
      plane.bus.addRule('LaunchRule', launchLifecyclePattern(Object.keys(config.groups)), onto(queue)),
      plane.bus.addRule('CommandStatusRule', commandStatusPattern(config.documentName), onto(statusQueue)),
    );
    if (options.reconcileEverySeconds !== undefined) orchestrator.#schedule(options.reconcileEverySeconds);
    return orchestrator;
  }

  /** One scheduled reconcile, delivered like the schedule delivers it (async, with retries). */
  public reconcile(): Promise<void> {
    const { bus, region } = this.plane;
    const event = bus.event('aws.events', SCHEDULED_DETAIL_TYPE, {}, [
      `arn:aws:events:${region}:123456789012:rule/selfdeploy-reconcile`,
    ]);
    return bus.invoke('ReconcileSchedule', event, (e) => this.lambda.invokeAsync(e));
  }

  /**
   * A stack update of the function: its configuration (SELFDEPLOY_CONFIG; the queue stays the
   * same) replaced, and with `code` its handler module too, as CloudFormation's
   * UpdateFunctionConfiguration and UpdateFunctionCode do. Invocations from now on run them in
   * new execution environments; those running finish on the old ones. Events and messages
   * already queued are handled by the new ones.
   */
  public updateConfig(
    config: Omit<ConfigInput, 'waitQueueUrl'>,
    code?: { readonly modulePath: string },
  ): void {
    this.#config = config;
    this.lambda.update({
      env: functionEnv(this.plane, { ...config, waitQueueUrl: this.queue.url }),
      ...(code && { modulePath: code.modulePath }),
    });
  }

  /** Invokes the function directly, as the Lambda console's Test button does, and returns its result. */
  public invoke(event: unknown): Promise<unknown> {
    return this.lambda.invoke(event);
  }

  public async stop(): Promise<void> {
    this.#stopSchedule();
    for (const remove of this.#removeRules) remove();
    await Promise.all([this.mapping.stop(), this.statusMapping.stop()]);
    await this.lambda.stop();
  }

  #schedule(everySeconds: number): void {
    const tick = () => {
      this.#stopSchedule = this.plane.clock.after(everySeconds, () => {
        void this.reconcile();
        tick();
      });
    };
    tick();
  }
}

/** The function's environment variables, as the construct sets them. */
function functionEnv(plane: ControlPlane, config: ConfigInput): Record<string, string> {
  return {
    ...plane.env(),
    SELFDEPLOY_CONFIG: JSON.stringify(config),
    POWERTOOLS_SERVICE_NAME: 'selfdeploy',
    AWS_LAMBDA_FUNCTION_NAME: FUNCTION_NAME,
  };
}
