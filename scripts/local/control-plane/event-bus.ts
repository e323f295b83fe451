import type { EventPattern } from '../../../functions/shared/event-patterns';
import type { Clock } from './clock';
import { matchesPattern } from './event-pattern';
import { isoSeconds, uuid } from './ids';

/** An EventBridge event as a rule target receives it. */
export interface AwsEvent {
  readonly version: '0';
  readonly id: string;
  readonly 'detail-type': string;
  readonly source: string;
  readonly account: string;
  readonly time: string;
  readonly region: string;
  readonly resources: readonly string[];
  readonly detail: Readonly<Record<string, unknown>>;
}

/** A rule target, e.g. a Lambda handler invoked asynchronously. A throw is a failed invocation. */
export type EventTarget = (event: AwsEvent) => Promise<unknown>;

/** Decides, per event, whether it is lost or delivered more than once. */
export interface DeliveryFaults {
  /** True when this event never reaches the targets (EventBridge delivery is best-effort). */
  readonly drop?: (event: AwsEvent) => boolean;
  /** How many extra copies of this event are delivered (default 0). */
  readonly duplicates?: (event: AwsEvent) => number;
  /** Simulated seconds between one copy's delivery and the next. @default 0 (all at once) */
  readonly duplicateSpacingSeconds?: number;
}

export interface EventBusOptions {
  readonly clock: Clock;
  readonly region: string;
  readonly account: string;
  readonly faults?: DeliveryFaults;
  /** Simulated seconds before each retry of a failed invocation (Lambda: about 60 then 120). @default [60, 120] */
  readonly retryDelaysSeconds?: readonly number[];
}

/** One delivery of one event to one target, for logs and assertions. */
export interface DeliveryRecord {
  readonly rule: string;
  readonly event: AwsEvent;
  readonly attempt: number;
  readonly error?: unknown;
}

interface Rule {
  readonly name: string;
  readonly pattern: EventPattern;
  readonly target: EventTarget;
}

/**
 * The default event bus: events from the simulated services go to every rule whose
 * pattern matches, delivered asynchronously like EventBridge → Lambda: each copy is its
 * own invocation, a failed invocation is retried twice, then it lands in `deadLetters`.
 */
export class EventBus {
  readonly #rules: Rule[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  readonly #retryDelays: readonly number[];
  /** Events put on the bus, in order (before faults are applied). */
  public readonly published: AwsEvent[] = [];
  /** Events a fault dropped. */
  public readonly dropped: AwsEvent[] = [];
  /** Every invocation attempt and how it ended. */
  public readonly deliveries: DeliveryRecord[] = [];
  /** Invocations that failed all their attempts. */
  public readonly deadLetters: DeliveryRecord[] = [];
  public faults: DeliveryFaults;

  public constructor(private readonly options: EventBusOptions) {
    this.faults = options.faults ?? {};
    this.#retryDelays = options.retryDelaysSeconds ?? [60, 120];
  }

  /** Adds a rule sending matching events to `target`; returns a function that removes it. */
  public addRule(name: string, pattern: EventPattern, target: EventTarget): () => void {
    const rule = { name, pattern, target };
    this.#rules.push(rule);
    return () => {
      const index = this.#rules.indexOf(rule);
      if (index >= 0) this.#rules.splice(index, 1);
    };
  }

  /** Builds an event with the envelope fields AWS fills in. */
  public event(
    source: string,
    detailType: string,
    detail: Record<string, unknown>,
    resources: readonly string[] = [],
  ): AwsEvent {
    return {
      version: '0',
      id: uuid(),
      'detail-type': detailType,
      source,
      account: this.options.account,
      time: isoSeconds(Date.now()),
      region: this.options.region,
      resources,
      detail,
    };
  }

  /** Publishes an event: matching rules get it asynchronously, subject to the faults. */
  public put(event: AwsEvent): void {
    this.published.push(event);
    if (this.faults.drop?.(event)) {
      this.dropped.push(event);
      return;
    }
    const copies = 1 + (this.faults.duplicates?.(event) ?? 0);
    for (const rule of this.#rules) {
      if (!matchesPattern(rule.pattern, event)) continue;
      for (let copy = 0; copy < copies; copy++) {
        this.#track(this.#deliver(rule, event, copy * (this.faults.duplicateSpacingSeconds ?? 0)));
      }
    }
  }

  /** Invokes `target` directly with `event`, with the same async retries (a schedule's target). */
  public invoke(name: string, event: AwsEvent, target: EventTarget): Promise<void> {
    const delivery = this.#deliver({ name, pattern: {}, target }, event);
    this.#track(delivery);
    return delivery;
  }

  /** Resolves when no delivery is running or waiting for a retry. */
  public async idle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  async #deliver(rule: Rule, event: AwsEvent, delaySeconds = 0): Promise<void> {
    // Like an async invoke: the producer never waits for the target.
    await (delaySeconds > 0
      ? this.options.clock.sleep(delaySeconds)
      : new Promise((resolve) => setImmediate(resolve)));
    for (let attempt = 1; ; attempt++) {
      try {
        await rule.target(event);
        this.deliveries.push({ rule: rule.name, event, attempt });
        return;
      } catch (error) {
        const record = { rule: rule.name, event, attempt, error };
        this.deliveries.push(record);
        const delay = this.#retryDelays[attempt - 1];
        if (delay === undefined) {
          this.deadLetters.push(record);
          return;
        }
        await this.options.clock.sleep(delay);
      }
    }
  }

  #track(delivery: Promise<void>): void {
    this.#inFlight.add(delivery);
    void delivery.finally(() => this.#inFlight.delete(delivery));
  }
}
