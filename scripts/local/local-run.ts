import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConfigInput } from '../../functions/orchestrator/config';
import type { LifecycleResult } from '../../functions/shared/lifecycle-result';
import {
  buildSelfDeployDocument,
  type SelfDeployDocument,
  type SelfDeployDocumentOptions,
} from '../../infra/document';
import { type StandInAgentOptions, standInAgent } from './agents';
import type { HookSpec, WarmPoolSpec } from './control-plane/auto-scaling';
import { type AgentDelay, type BootDelay, ControlPlane } from './control-plane/control-plane';
import type { DeliveryFaults } from './control-plane/event-bus';
import type { CallRequest } from './control-plane/server';
import type { Agent } from './control-plane/ssm';
import type { ThrottleOptions } from './control-plane/throttle';
import { BOOT_FINISHED, type SimulatedInstances, simulatedInstances } from './deploy-agent';
import { LocalOrchestrator } from './orchestrator';
import { createSampleApp, type SampleApp } from './sample-app';
import { ensureAppUser, removeAppUser, runUserName, type Sshd, startSshd } from './sshd';

export const GROUP_NAME = 'web';
export const HOOK_NAME = 'selfdeploy-launch';
export const DOCUMENT_NAME = 'SelfDeploy';
/** The application user named to stand-in deploys (nothing runs as it). */
export const STAND_IN_APP_USER = 'deploy';
/** Simulated seconds from agent registration until boot finishes, by default (see LocalRunOptions). */
export const DEFAULT_BOOT_DELAY_SECONDS = 10;
/** Where the application lives on every (simulated) instance; each instance has its own root. */
export const APP_PATH = '/srv/app';
export const DEPLOY_PATH = '/srv/app/deploy';

export interface LocalRunOptions {
  /** How commands run on instances: the real deploy, or the fast stand-in. @default 'real' */
  readonly deploy?: 'real' | StandInAgentOptions;
  /** Simulated seconds per real second for the control plane's timers. @default 10 */
  readonly timeScale?: number;
  /** Control plane port on 127.0.0.1. @default any free port */
  readonly port?: number;
  /** Simulated seconds until a new instance's agent registers. @default 5 */
  readonly agentDelaySeconds?: AgentDelay;
  /** Agent registrations per simulated second. @default unlimited */
  readonly agentRegistrationsPerSecond?: number;
  /**
   * Simulated seconds from an instance's agent registration until its boot (user data:
   * the clone of the deploy checkout) finishes, as on a real instance, where the agent is
   * not ordered after cloud-init. @default 10
   */
  readonly bootDelaySeconds?: BootDelay;
  readonly throttle?: ThrottleOptions;
  readonly faults?: DeliveryFaults;
  /** API calls refused as a missing IAM permission refuses them. @default none */
  readonly denied?: (call: CallRequest) => boolean;
  /** Simulated seconds between scheduled reconciles. @default no schedule (call reconcile()) */
  readonly reconcileEverySeconds?: number;
  /** The launch hook. @default heartbeat timeout 600 s, default result ABANDON */
  readonly hook?: Partial<Omit<HookSpec, 'name'>>;
  /** @default 10 */
  readonly maxSize?: number;
  /** The group's MinSize; it starts with this many instances. @default 0 */
  readonly minSize?: number;
  /** A warm pool for the group (PutWarmPool). @default none */
  readonly warmPool?: WarmPoolSpec;
  /** Instances whose sshd is down, so their real deploy fails. @default none */
  readonly sshdDown?: (instanceId: string) => boolean;
  /** SELFDEPLOY_CONFIG settings besides the group. @default agentWaitSeconds 30 */
  readonly config?: Partial<Omit<ConfigInput, 'groups' | 'documentName'>>;
  /** The group's settings in SELFDEPLOY_CONFIG besides hook, user and paths. @default none */
  readonly group?: Partial<Pick<GroupInput, 'warmPool' | 'onFailure' | 'environment' | 'deployWith'>>;
  /** The event source mapping's MaximumConcurrency. @default the construct's default */
  readonly maxConcurrency?: number;
  /** The orchestrator's reserved concurrency. @default none */
  readonly reservedConcurrency?: number;
  /** The orchestrator's timeout, which sets its queue's visibility timeout too. @default 300 */
  readonly functionTimeoutSeconds?: number;
  /** SQS's duplicate deliveries (see ControlPlaneOptions). @default the control plane's */
  readonly duplicateDeliveries?: { readonly rate: number; readonly seed?: number };
}

type GroupInput = ConfigInput['groups'][string];

/** What happened to one launched instance. */
export interface InstanceRecord {
  readonly id: string;
  readonly launchedAt: number;
  completedAt?: number;
  result?: LifecycleResult;
  /** 'timeout': the hook's default result was applied. */
  completedBy?: 'api' | 'timeout';
  terminatedAt?: number;
}

/**
 * One local selfdeploy environment under one temporary directory: the sample application
 * repository, a loopback sshd, the control plane, the SelfDeploy document, the
 * orchestrator (the real handler) and an Auto Scaling group with the launch hook.
 * `npm start` and the end-to-end tests drive it.
 */
export class LocalRun {
  /** Every launched instance, in launch order. */
  public readonly records = new Map<string, InstanceRecord>();
  #stopped = false;

  private constructor(
    public readonly dir: string,
    public readonly plane: ControlPlane,
    public readonly orchestrator: LocalOrchestrator,
    /** The sample application (real deploys only). */
    public readonly app: SampleApp | undefined,
    /** The application user the group deploys as. */
    public readonly appUser: string,
    /** What the run's SelfDeploy document was built with: its instances' boot check and state directory. */
    public readonly documentOptions: SelfDeployDocumentOptions,
    /** The SelfDeploy document the run's instances get. */
    public readonly document: SelfDeployDocument,
    /** What stop() undoes, last started first: the function, the control plane, sshd, the run's user, its directory. */
    private readonly cleanups: readonly (() => Promise<void> | void)[],
  ) {
    plane.autoScaling.onChange((change) => {
      const { id } = change.instance;
      if (change.kind === 'launched') this.records.set(id, { id, launchedAt: Date.now() });
      const record = this.records.get(id);
      if (!record) return;
      // The fate of the instance is selfdeploy's hook's (another hook may also hold it).
      if (change.kind === 'completed' && change.hookName === HOOK_NAME) {
        record.completedAt = Date.now();
        record.result = change.result;
        record.completedBy = change.reason;
      }
      if (change.kind === 'terminated') record.terminatedAt = Date.now();
    });
  }

  public static async start(options: LocalRunOptions = {}): Promise<LocalRun> {
    const dir = mkdtempSync(join(tmpdir(), 'selfdeploy-'));
    // The application user reads the repository and its instance roots below this directory.
    chmodSync(dir, 0o755);
    const cleanups: (() => Promise<void> | void)[] = [() => rmSync(dir, { recursive: true, force: true })];
    try {
      const real = options.deploy === undefined || options.deploy === 'real';
      let appUserName = STAND_IN_APP_USER;
      let agent: Agent;
      let sshd: Sshd | undefined;
      let app: SampleApp | undefined;
      let instances: SimulatedInstances | undefined;
      if (real) {
        // As root, a user of this run's own, removed when it ends; otherwise the current user.
        const appUser = ensureAppUser(runUserName('app'));
        appUserName = appUser.name;
        // Also when the process exits without stopping the run (an uncaught error).
        const removeUser = () => removeAppUser(appUser.name);
        process.once('exit', removeUser);
        cleanups.unshift(() => {
          process.removeListener('exit', removeUser);
          removeUser();
        });
        const started = await startSshd({ dir: join(dir, 'sshd') });
        sshd = started;
        cleanups.unshift(() => started.stop());
        app = createSampleApp({ dir: join(dir, 'app'), owner: appUser });
        instances = simulatedInstances({
          dir: join(dir, 'instances'),
          app,
          appUser,
          sshd,
          region: 'us-east-1',
          appPath: APP_PATH,
          deployPath: DEPLOY_PATH,
          ...(options.sshdDown ? { sshdDown: options.sshdDown } : {}),
        });
        agent = instances.agent;
      } else {
        agent = standInAgent(options.deploy);
      }
      const plane = await ControlPlane.start({
        timeScale: options.timeScale ?? 10,
        agentDelaySeconds: options.agentDelaySeconds ?? 5,
        bootDelaySeconds: options.bootDelaySeconds ?? DEFAULT_BOOT_DELAY_SECONDS,
        agent,
        ...(instances ? { machine: instances.machine } : {}),
        ...(options.port === undefined ? {} : { port: options.port }),
        ...(options.agentRegistrationsPerSecond === undefined
          ? {}
          : { agentRegistrationsPerSecond: options.agentRegistrationsPerSecond }),
        ...(options.throttle ? { throttle: options.throttle } : {}),
        ...(options.faults ? { faults: options.faults } : {}),
        ...(options.denied ? { denied: options.denied } : {}),
        ...(options.duplicateDeliveries ? { duplicateDeliveries: options.duplicateDeliveries } : {}),
      });
      cleanups.unshift(() => plane.close());
      const documentOptions: SelfDeployDocumentOptions = {
        // The instances' boot, as `cloud-init status --wait` sees it on a real one, and
        // their state directories, each under the instance's own root.
        ...(instances
          ? { bootCheckCommand: instances.bootCheckCommand, stateDirectory: instances.stateDirectory }
          : {}),
        // Not root, the run deploys as the developer, who may have sudo rights; the run's
        // own user (as root) has none, and the script checks that.
        ...(real && process.getuid?.() !== 0 ? { allowSudoAppUser: true } : {}),
      };
      const document = buildSelfDeployDocument(documentOptions);
      plane.ssm.putDocument(DOCUMENT_NAME, JSON.stringify(document));
      const heartbeatTimeout = options.hook?.heartbeatTimeout ?? 600;
      const orchestrator = await LocalOrchestrator.start({
        plane,
        logFile: join(dir, 'orchestrator.log'),
        config: {
          agentWaitSeconds: 30,
          ...options.config,
          documentName: DOCUMENT_NAME,
          groups: {
            [GROUP_NAME]: {
              ...options.group,
              lifecycleHookName: HOOK_NAME,
              appUser: appUserName,
              appPath: APP_PATH,
              deployPath: DEPLOY_PATH,
              heartbeatTimeoutSeconds: heartbeatTimeout,
            },
          },
        },
        ...(options.reconcileEverySeconds === undefined
          ? {}
          : { reconcileEverySeconds: options.reconcileEverySeconds }),
        ...(options.maxConcurrency === undefined ? {} : { maxConcurrency: options.maxConcurrency }),
        ...(options.reservedConcurrency === undefined
          ? {}
          : { reservedConcurrency: options.reservedConcurrency }),
        ...(options.functionTimeoutSeconds === undefined
          ? {}
          : { timeoutSeconds: options.functionTimeoutSeconds }),
      });
      cleanups.unshift(() => orchestrator.stop());
      plane.autoScaling.createGroup({
        name: GROUP_NAME,
        maxSize: options.maxSize ?? 10,
        ...(options.minSize !== undefined && { minSize: options.minSize }),
        hook: { name: HOOK_NAME, ...options.hook, heartbeatTimeout },
      });
      if (options.warmPool) plane.autoScaling.putWarmPool(GROUP_NAME, options.warmPool);
      return new LocalRun(dir, plane, orchestrator, app, appUserName, documentOptions, document, cleanups);
    } catch (error) {
      for (const cleanup of cleanups) await cleanup();
      throw error;
    }
  }

  /** Scales the group to `count` instances. */
  public scaleTo(count: number): void {
    this.plane.autoScaling.setDesiredCapacity(GROUP_NAME, count);
  }

  /** The group's instances now (terminated ones have left). */
  public instances() {
    return [...this.plane.autoScaling.group(GROUP_NAME).instances.values()];
  }

  /** True once the group has its desired capacity, all of it InService. */
  public settled(): boolean {
    const group = this.plane.autoScaling.group(GROUP_NAME);
    const instances = this.instances();
    return instances.length === group.desiredCapacity && instances.every((i) => i.state === 'InService');
  }

  /** The revision deployed on an instance (current/REVISION), or undefined before its first deploy. */
  public revisionOf(instanceId: string): string | undefined {
    const path = join(this.dir, 'instances', instanceId, APP_PATH, 'current', 'REVISION');
    return existsSync(path) ? readFileSync(path, 'utf8').trim() : undefined;
  }

  /** Whether the instance's boot has finished (real deploys only; stand-in instances do not boot). */
  public booted(instanceId: string): boolean | undefined {
    return this.app ? existsSync(join(this.dir, 'instances', instanceId, BOOT_FINISHED)) : undefined;
  }

  /** Waits (real time) until `condition` holds; throws naming `what` after `timeoutMs`. */
  public async waitFor(what: string, condition: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /**
   * Waits until the bus has delivered everything and no invocation of the function runs:
   * the invocations that complete lifecycle actions finish just after their last call.
   */
  public async idle(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    await Promise.race([this.plane.bus.idle(), new Promise((resolve) => setTimeout(resolve, timeoutMs))]);
    await this.waitFor(
      'the last invocations to finish',
      () => this.orchestrator.lambda.concurrency === 0,
      Math.max(0, deadline - Date.now()),
    );
  }

  /**
   * Stops everything and removes the user the run created; removes the run's directory
   * unless `keep`. Safe to call twice.
   */
  public async stop(keep = false): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    // The run's directory is the last cleanup.
    const cleanups = keep ? this.cleanups.slice(0, -1) : this.cleanups;
    for (const cleanup of cleanups) await cleanup();
  }
}
