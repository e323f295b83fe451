import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConfigInput } from '../../functions/orchestrator/config';
import { buildSelfDeployDocument } from '../../infra/document';
import { type StandInAgentOptions, standInAgent } from './agents';
import type { HookSpec, LifecycleResult } from './control-plane/auto-scaling';
import { type AgentDelay, ControlPlane } from './control-plane/control-plane';
import type { DeliveryFaults } from './control-plane/event-bus';
import type { Agent } from './control-plane/ssm';
import type { ThrottleOptions } from './control-plane/throttle';
import { deployAgent } from './deploy-agent';
import { LocalOrchestrator } from './orchestrator';
import { createSampleApp, type SampleApp } from './sample-app';
import { ensureAppUser, type Sshd, startSshd } from './sshd';

export const GROUP_NAME = 'web';
export const HOOK_NAME = 'selfdeploy-launch';
export const DOCUMENT_NAME = 'SelfDeploy';
/** The unprivileged user the simulated instances deploy as (when run as root). */
export const DEFAULT_APP_USER = 'selfdeploy-app';
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
  readonly throttle?: ThrottleOptions;
  readonly faults?: DeliveryFaults;
  /** Simulated seconds between scheduled reconciles. @default no schedule (call reconcile()) */
  readonly reconcileEverySeconds?: number;
  /** The launch hook. @default heartbeat timeout 600 s, default result ABANDON */
  readonly hook?: Partial<Omit<HookSpec, 'name'>>;
  /** @default 10 */
  readonly maxSize?: number;
  /** Instances whose sshd is down, so their real deploy fails. @default none */
  readonly sshdDown?: (instanceId: string) => boolean;
  /**
   * The application user (created when missing, when run as root). Runs that deploy at the
   * same time need different users: each run's sshd has its own host keys, and the user's
   * known_hosts trusts one run's keys at a time.
   * @default 'selfdeploy-app'
   */
  readonly appUser?: string;
  /** SELFDEPLOY_CONFIG settings besides the group. @default agentWaitSeconds 30 */
  readonly config?: Partial<Omit<ConfigInput, 'groups' | 'documentName'>>;
}

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

  private constructor(
    public readonly dir: string,
    public readonly plane: ControlPlane,
    public readonly orchestrator: LocalOrchestrator,
    /** The sample application (real deploys only). */
    public readonly app: SampleApp | undefined,
    private readonly sshd: Sshd | undefined,
  ) {
    plane.autoScaling.onChange((change) => {
      const { id } = change.instance;
      if (change.kind === 'launched') this.records.set(id, { id, launchedAt: Date.now() });
      const record = this.records.get(id);
      if (!record) return;
      if (change.kind === 'completed') {
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
      // Not root, the deploy runs as the current user (ensureAppUser says who that is).
      let appUserName = options.appUser ?? DEFAULT_APP_USER;
      let agent: Agent;
      let sshd: Sshd | undefined;
      let app: SampleApp | undefined;
      if (real) {
        const appUser = ensureAppUser(appUserName);
        appUserName = appUser.name;
        const started = await startSshd({ dir: join(dir, 'sshd') });
        sshd = started;
        cleanups.unshift(() => started.stop());
        app = createSampleApp({ dir: join(dir, 'app'), owner: appUser });
        agent = deployAgent({
          dir: join(dir, 'instances'),
          app,
          appUser,
          sshd,
          region: 'us-east-1',
          ...(options.sshdDown ? { sshdDown: options.sshdDown } : {}),
        });
      } else {
        agent = standInAgent(options.deploy);
      }
      const plane = await ControlPlane.start({
        timeScale: options.timeScale ?? 10,
        agentDelaySeconds: options.agentDelaySeconds ?? 5,
        agent,
        ...(options.port === undefined ? {} : { port: options.port }),
        ...(options.agentRegistrationsPerSecond === undefined
          ? {}
          : { agentRegistrationsPerSecond: options.agentRegistrationsPerSecond }),
        ...(options.throttle ? { throttle: options.throttle } : {}),
        ...(options.faults ? { faults: options.faults } : {}),
      });
      cleanups.unshift(() => plane.close());
      plane.ssm.putDocument(DOCUMENT_NAME, JSON.stringify(buildSelfDeployDocument()));
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
      });
      plane.autoScaling.createGroup({
        name: GROUP_NAME,
        maxSize: options.maxSize ?? 10,
        hook: { name: HOOK_NAME, ...options.hook, heartbeatTimeout },
      });
      return new LocalRun(dir, plane, orchestrator, app, sshd);
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

  /** Waits (real time) until `condition` holds; throws naming `what` after `timeoutMs`. */
  public async waitFor(what: string, condition: () => boolean, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Stops everything; removes the run's directory unless `keep`. */
  public async stop(keep = false): Promise<void> {
    await this.orchestrator.stop();
    await this.plane.close();
    await this.sshd?.stop();
    if (!keep) rmSync(this.dir, { recursive: true, force: true });
  }
}
