import { join } from 'node:path';
import type { ConfigInput } from '../../functions/orchestrator/config';
import {
  commandStatusPattern,
  launchLifecyclePattern,
  SCHEDULED_DETAIL_TYPE,
} from '../../functions/shared/event-patterns';
import type { ControlPlane } from './control-plane/control-plane';
import { LocalLambda } from './lambda';

/** The orchestrator handler, unmodified: what the CDK construct deploys. */
export const HANDLER_MODULE = join(__dirname, '..', '..', 'functions', 'orchestrator', 'handler.ts');

export interface LocalOrchestratorOptions {
  readonly plane: ControlPlane;
  /** SELFDEPLOY_CONFIG as the CDK construct would set it. */
  readonly config: ConfigInput;
  /** The function's log. */
  readonly logFile: string;
  /** Real seconds an invocation may run. @default 300, the CDK construct's default function timeout */
  readonly timeoutSeconds?: number;
  /** Simulated seconds between scheduled reconciles; undefined: only when `reconcile()` is called. */
  readonly reconcileEverySeconds?: number;
}

/**
 * selfdeploy deployed against a local control plane: the handler in its own process with
 * SELFDEPLOY_CONFIG and the SDK endpoint variables, the launch and command-status rules
 * with the very patterns the CDK rules use, and the reconcile schedule.
 */
export class LocalOrchestrator {
  #stopSchedule: () => void = () => {};
  readonly #removeRules: (() => void)[] = [];

  private constructor(
    public readonly lambda: LocalLambda,
    private readonly plane: ControlPlane,
  ) {}

  public static async start(options: LocalOrchestratorOptions): Promise<LocalOrchestrator> {
    const { plane, config } = options;
    const lambda = await LocalLambda.start({
      modulePath: HANDLER_MODULE,
      env: {
        ...plane.env(),
        SELFDEPLOY_CONFIG: JSON.stringify(config),
        POWERTOOLS_SERVICE_NAME: 'selfdeploy',
        AWS_LAMBDA_FUNCTION_NAME: 'selfdeploy-orchestrator',
      },
      timeoutSeconds: options.timeoutSeconds ?? 300,
      logFile: options.logFile,
    });
    const orchestrator = new LocalOrchestrator(lambda, plane);
    const target = (event: unknown) => lambda.invoke(event);
    orchestrator.#removeRules.push(
      plane.bus.addRule('LaunchRule', launchLifecyclePattern(Object.keys(config.groups)), target),
      plane.bus.addRule('CommandStatusRule', commandStatusPattern(config.documentName), target),
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
    return bus.invoke('ReconcileSchedule', event, (e) => this.lambda.invoke(e));
  }

  /** Invokes the function directly, as the Lambda console's Test button does, and returns its result. */
  public invoke(event: unknown): Promise<unknown> {
    return this.lambda.invoke(event);
  }

  public async stop(): Promise<void> {
    this.#stopSchedule();
    for (const remove of this.#removeRules) remove();
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
