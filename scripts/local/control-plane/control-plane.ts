import type { Server } from 'node:http';
import { AutoScaling, type Instance } from './auto-scaling';
import { Clock } from './clock';
import { Ec2, GROUP_NAME_TAG } from './ec2';
import { type DeliveryFaults, EventBus } from './event-bus';
import { seededRandom } from './ids';
import { Functions } from './lambda-api';
import { type CallRecord, type CallRequest, listen } from './server';
import { type Credentials, randomCredentials } from './sigv4';
import { type Queue, type QueueSettings, Sqs } from './sqs';
import { type Agent, Ssm } from './ssm';
import { Throttle, type ThrottleOptions } from './throttle';

/** Simulated seconds from an instance's launch until its SSM agent registers; undefined: never. */
export type AgentDelay = number | ((instance: Instance, launchIndex: number) => number | undefined);

/** Simulated seconds from an agent's registration until the instance's boot finishes. */
export type BootDelay = number | ((instance: Instance) => number);

/** The operating system of simulated instances: what a finished boot and a stop leave on disk. */
export interface Machine {
  /** Boot finished: user data ran (on the first boot only, as cloud-init runs it) and boot is marked done. */
  booted(instance: Instance, firstBoot: boolean): void;
  /** The instance stopped (it entered a warm pool): its next boot starts from scratch. */
  stopped(instance: Instance): void;
}

export interface ControlPlaneOptions {
  /** TCP port on 127.0.0.1. @default 0 (any free port) */
  readonly port?: number;
  /** @default 'us-east-1' */
  readonly region?: string;
  /** @default '123456789012' */
  readonly account?: string;
  /** Simulated seconds per real second for every timer (see Clock). @default 1 */
  readonly timeScale?: number;
  /** Rate limits and random throttling of API calls. @default none */
  readonly throttle?: ThrottleOptions;
  /** Lost and duplicated event deliveries. @default none */
  readonly faults?: DeliveryFaults;
  /** Simulated seconds before each retry of a failed async invocation. @default [60, 120] */
  readonly retryDelaysSeconds?: readonly number[];
  /** Simulated seconds before a new invocation is readable with GetCommandInvocation. @default 1 */
  readonly invocationVisibilitySeconds?: number;
  /** Simulated seconds after a launch before EC2's reads and CreateTags know the instance. @default 1 */
  readonly instanceVisibilitySeconds?: number;
  /** Runs the commands sent to instances. @default every command succeeds at once with no output */
  readonly agent?: Agent;
  /** @default 0 */
  readonly agentDelaySeconds?: AgentDelay;
  /**
   * Agent registrations accepted per simulated second; later ones wait their turn, as
   * registration is throttled on big scale-outs. @default unlimited
   */
  readonly agentRegistrationsPerSecond?: number;
  /**
   * Boot order of a real instance: the agent (ordered after the network only) registers
   * first, and boot (cloud-init, user data) finishes this many simulated seconds later.
   * @default 0
   */
  readonly bootDelaySeconds?: BootDelay;
  /** What boots on each instance. @default nothing (the instances have no disk) */
  readonly machine?: Machine;
  /**
   * SQS's at-least-once delivery: the probability that a receive leaves behind a copy a
   * later receive hands out again, from a seeded generator. @default { rate: 0.01, seed: 1 }
   */
  readonly duplicateDeliveries?: { readonly rate: number; readonly seed?: number };
  /** Calls refused with AccessDenied(Exception), as a missing IAM permission refuses them. @default none */
  readonly denied?: (call: CallRequest) => boolean;
}

/**
 * A local stand-in for Auto Scaling, EC2, SSM, SQS, Lambda's Invoke and EventBridge, served on
 * 127.0.0.1 with the real wire protocols. Launches start simulated instances whose agents
 * register after a delay and run commands with `agent`.
 */
export class ControlPlane {
  public readonly endpoint: string;
  public readonly region: string;
  public readonly clock: Clock;
  public readonly bus: EventBus;
  public readonly autoScaling: AutoScaling;
  public readonly ssm: Ssm;
  public readonly sqs: Sqs;
  public readonly ec2: Ec2;
  /** The functions Lambda's Invoke API reaches (the local run registers its orchestrator). */
  public readonly functions: Functions;
  public readonly throttle: Throttle;
  /** This control plane's own access key, made at start; every request must be signed with it. */
  public readonly credentials: Credentials;
  /** Every API call answered, in order. */
  public readonly calls: CallRecord[];
  /** How long the agents of instances launched from now on take to register. */
  public agentDelaySeconds: AgentDelay;
  /** How long after its agent registers an instance's boot finishes (from now on). */
  public bootDelaySeconds: BootDelay;
  readonly #server: Server;
  readonly #agent: Agent;
  readonly #machine: Machine | undefined;
  /** Cancels an instance's pending agent registration or boot. */
  readonly #pending = new Map<string, () => void>();
  /** Instances that have finished a boot before (user data runs only on the first). */
  readonly #bootedOnce = new Set<string>();
  #launches = 0;
  readonly #registrationGapSeconds: number;
  /** When (in simulated seconds since the epoch) the next agent may register. */
  #nextSlotAt = 0;

  private constructor(parts: {
    endpoint: string;
    region: string;
    clock: Clock;
    bus: EventBus;
    autoScaling: AutoScaling;
    ssm: Ssm;
    sqs: Sqs;
    ec2: Ec2;
    functions: Functions;
    throttle: Throttle;
    credentials: Credentials;
    calls: CallRecord[];
    server: Server;
    agent: Agent;
    agentDelaySeconds: AgentDelay;
    bootDelaySeconds: BootDelay;
    machine: Machine | undefined;
    registrationGapSeconds: number;
  }) {
    this.endpoint = parts.endpoint;
    this.region = parts.region;
    this.clock = parts.clock;
    this.bus = parts.bus;
    this.autoScaling = parts.autoScaling;
    this.ssm = parts.ssm;
    this.sqs = parts.sqs;
    this.ec2 = parts.ec2;
    this.functions = parts.functions;
    this.throttle = parts.throttle;
    this.credentials = parts.credentials;
    this.calls = parts.calls;
    this.agentDelaySeconds = parts.agentDelaySeconds;
    this.bootDelaySeconds = parts.bootDelaySeconds;
    this.#registrationGapSeconds = parts.registrationGapSeconds;
    this.#server = parts.server;
    this.#agent = parts.agent;
    this.#machine = parts.machine;
    this.autoScaling.onChange((change) => {
      const { instance } = change;
      if (change.kind === 'launched' || change.kind === 'started') this.#scheduleRegistration(instance);
      if (change.kind === 'stopped' || change.kind === 'terminated') {
        this.#pending.get(instance.id)?.();
        this.#pending.delete(instance.id);
        this.ssm.agentOffline(instance.id, change.kind === 'terminated');
      }
      if (change.kind === 'stopped') this.#machine?.stopped(instance);
      if (change.kind === 'terminated') this.#bootedOnce.delete(instance.id);
    });
  }

  public static async start(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
    const region = options.region ?? 'us-east-1';
    const account = options.account ?? '123456789012';
    const clock = new Clock(options.timeScale ?? 1);
    const bus = new EventBus({
      clock,
      region,
      account,
      ...(options.faults ? { faults: options.faults } : {}),
      ...(options.retryDelaysSeconds ? { retryDelaysSeconds: options.retryDelaysSeconds } : {}),
    });
    const autoScaling = new AutoScaling(clock, bus, account, region);
    const ec2 = new Ec2(autoScaling, clock, options.instanceVisibilitySeconds ?? 1);
    const functions = new Functions(region, account, clock, options.retryDelaysSeconds ?? [60, 120]);
    const ssm = new Ssm(clock, bus, account, region, options.invocationVisibilitySeconds ?? 1);
    const throttle = new Throttle(options.throttle);
    const calls: CallRecord[] = [];
    const credentials = randomCredentials();
    const duplicates = options.duplicateDeliveries ?? { rate: 0.01 };
    const sqs = new Sqs({
      clock,
      account,
      region,
      // The IAM user id of the caller, which SenderId names: AIDA and the key's own characters.
      senderId: `AIDA${credentials.accessKeyId.slice(4)}`,
      duplicateRate: duplicates.rate,
      random: seededRandom(duplicates.seed ?? 1),
    });
    const { server, endpoint } = await listen(options.port ?? 0, {
      credentials,
      region,
      autoScaling,
      ssm,
      sqs,
      ec2,
      functions,
      throttle,
      account,
      onCall: (call) => calls.push(call),
      denied: options.denied ?? (() => false),
    });
    sqs.endpoint = endpoint;
    return new ControlPlane({
      endpoint,
      region,
      clock,
      bus,
      autoScaling,
      ssm,
      sqs,
      ec2,
      functions,
      throttle,
      credentials,
      calls,
      server,
      agent: options.agent ?? (async () => ({ exitCode: 0, stdout: '', stderr: '', timedOut: false })),
      agentDelaySeconds: options.agentDelaySeconds ?? 0,
      bootDelaySeconds: options.bootDelaySeconds ?? 0,
      machine: options.machine,
      registrationGapSeconds: options.agentRegistrationsPerSecond
        ? 1 / options.agentRegistrationsPerSecond
        : 0,
    });
  }

  /** The environment that points an AWS SDK or the AWS CLI at this control plane. */
  public env(): Record<string, string> {
    return {
      AWS_ENDPOINT_URL_AUTO_SCALING: this.endpoint,
      AWS_ENDPOINT_URL_SSM: this.endpoint,
      AWS_ENDPOINT_URL_SQS: this.endpoint,
      AWS_ENDPOINT_URL_EC2: this.endpoint,
      AWS_ENDPOINT_URL_LAMBDA: this.endpoint,
      AWS_REGION: this.region,
      // The AWS CLI v1 reads the region from here only.
      AWS_DEFAULT_REGION: this.region,
      AWS_ACCESS_KEY_ID: this.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: this.credentials.secretAccessKey,
    };
  }

  /** Creates a standard queue, as CloudFormation would before the function starts. */
  public createQueue(name: string, settings: Partial<QueueSettings> = {}): Queue {
    return this.sqs.createQueue(name, settings);
  }

  /** API calls made about one instance. */
  public callsFor(instanceId: string): CallRecord[] {
    return this.calls.filter((call) => call.instanceIds.includes(instanceId));
  }

  /** Stops the server and every timer and running command. */
  public async close(): Promise<void> {
    this.autoScaling.stop();
    this.ssm.stop();
    this.clock.stop();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /**
   * The agent is ready after its delay and registers then, or, past the registration rate, at
   * the next free slot: agents take slots in the order they become ready, so one slow to boot
   * holds up no other. Boot finishes after registration.
   */
  #scheduleRegistration(instance: Instance): void {
    const index = this.#launches++;
    const delay =
      typeof this.agentDelaySeconds === 'function'
        ? this.agentDelaySeconds(instance, index)
        : this.agentDelaySeconds;
    if (delay === undefined) return;
    const register = () => {
      this.#pending.delete(instance.id);
      this.ssm.registerInstance(instance.id, { [GROUP_NAME_TAG]: instance.groupName }, this.#agent);
      this.#scheduleBoot(instance);
    };
    const ready = () => {
      const wait = this.#registrationSlot();
      if (wait <= 0) register();
      else this.#pending.set(instance.id, this.clock.after(wait, register));
    };
    if (delay <= 0) ready();
    else this.#pending.set(instance.id, this.clock.after(delay, ready));
  }

  #scheduleBoot(instance: Instance): void {
    const machine = this.#machine;
    if (!machine) return;
    const delay =
      typeof this.bootDelaySeconds === 'function' ? this.bootDelaySeconds(instance) : this.bootDelaySeconds;
    const boot = () => {
      this.#pending.delete(instance.id);
      const firstBoot = !this.#bootedOnce.has(instance.id);
      this.#bootedOnce.add(instance.id);
      machine.booted(instance, firstBoot);
    };
    if (delay <= 0) {
      boot();
      return;
    }
    this.#pending.set(instance.id, this.clock.after(delay, boot));
  }

  /** Simulated seconds until an agent ready now may register, given the rate limit; takes the slot. */
  #registrationSlot(): number {
    if (this.#registrationGapSeconds === 0) return 0;
    const now = (Date.now() * this.clock.scale) / 1000;
    const at = Math.max(now, this.#nextSlotAt);
    this.#nextSlotAt = at + this.#registrationGapSeconds;
    return at - now;
  }
}
