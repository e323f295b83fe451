import type { Server } from 'node:http';
import { AutoScaling, type Instance } from './auto-scaling';
import { Clock } from './clock';
import { type DeliveryFaults, EventBus } from './event-bus';
import { type CallRecord, listen } from './server';
import { type Agent, Ssm } from './ssm';
import { Throttle, type ThrottleOptions } from './throttle';

/** Simulated seconds from an instance's launch until its SSM agent registers; undefined: never. */
export type AgentDelay = number | ((instance: Instance, launchIndex: number) => number | undefined);

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
  /** Runs the commands sent to instances. @default every command succeeds at once with no output */
  readonly agent?: Agent;
  /** @default 0 */
  readonly agentDelaySeconds?: AgentDelay;
  /**
   * Agent registrations accepted per simulated second; later ones wait their turn, as
   * registration is throttled on big scale-outs. @default unlimited
   */
  readonly agentRegistrationsPerSecond?: number;
}

/**
 * A local stand-in for Auto Scaling, SSM and EventBridge, served on 127.0.0.1 with the real
 * wire protocols. Launches start simulated instances whose agents register after a delay
 * and run commands with `agent`.
 */
export class ControlPlane {
  public readonly endpoint: string;
  public readonly region: string;
  public readonly clock: Clock;
  public readonly bus: EventBus;
  public readonly autoScaling: AutoScaling;
  public readonly ssm: Ssm;
  public readonly throttle: Throttle;
  /** Every API call answered, in order. */
  public readonly calls: CallRecord[];
  /** How long the agents of instances launched from now on take to register. */
  public agentDelaySeconds: AgentDelay;
  readonly #server: Server;
  readonly #agent: Agent;
  readonly #registrations = new Map<string, () => void>();
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
    throttle: Throttle;
    calls: CallRecord[];
    server: Server;
    agent: Agent;
    agentDelaySeconds: AgentDelay;
    registrationGapSeconds: number;
  }) {
    this.endpoint = parts.endpoint;
    this.region = parts.region;
    this.clock = parts.clock;
    this.bus = parts.bus;
    this.autoScaling = parts.autoScaling;
    this.ssm = parts.ssm;
    this.throttle = parts.throttle;
    this.calls = parts.calls;
    this.agentDelaySeconds = parts.agentDelaySeconds;
    this.#registrationGapSeconds = parts.registrationGapSeconds;
    this.#server = parts.server;
    this.#agent = parts.agent;
    this.autoScaling.onChange((change) => {
      if (change.kind === 'launched') this.#scheduleRegistration(change.instance);
      if (change.kind === 'terminated') {
        this.#registrations.get(change.instance.id)?.();
        this.#registrations.delete(change.instance.id);
        this.ssm.instanceTerminated(change.instance.id);
      }
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
    const ssm = new Ssm(clock, bus, account, region, options.invocationVisibilitySeconds ?? 1);
    const throttle = new Throttle(options.throttle);
    const calls: CallRecord[] = [];
    const { server, endpoint } = await listen(options.port ?? 0, {
      autoScaling,
      ssm,
      throttle,
      onCall: (call) => calls.push(call),
    });
    return new ControlPlane({
      endpoint,
      region,
      clock,
      bus,
      autoScaling,
      ssm,
      throttle,
      calls,
      server,
      agent: options.agent ?? (async () => ({ exitCode: 0, stdout: '', stderr: '', timedOut: false })),
      agentDelaySeconds: options.agentDelaySeconds ?? 0,
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
      AWS_REGION: this.region,
      // The AWS CLI v1 reads the region from here only.
      AWS_DEFAULT_REGION: this.region,
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
    };
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

  #scheduleRegistration(instance: Instance): void {
    const index = this.#launches++;
    const delay =
      typeof this.agentDelaySeconds === 'function'
        ? this.agentDelaySeconds(instance, index)
        : this.agentDelaySeconds;
    if (delay === undefined) return;
    const wait = this.#registrationSlot(delay);
    const register = () => {
      this.#registrations.delete(instance.id);
      this.ssm.registerInstance(
        instance.id,
        { 'aws:autoscaling:groupName': instance.groupName },
        this.#agent,
      );
    };
    if (wait <= 0) {
      register();
      return;
    }
    this.#registrations.set(instance.id, this.clock.after(wait, register));
  }

  /** Simulated seconds until an agent ready after `delay` may register, given the rate limit. */
  #registrationSlot(delay: number): number {
    if (this.#registrationGapSeconds === 0) return delay;
    const now = (Date.now() * this.clock.scale) / 1000;
    const at = Math.max(now + delay, this.#nextSlotAt);
    this.#nextSlotAt = at + this.#registrationGapSeconds;
    return at - now;
  }
}
