import { createHash, randomBytes } from 'node:crypto';
import { ApiError } from './api-error';
import type { Clock } from './clock';
import { uuid } from './ids';

/** A message attribute as SendMessage takes it (`BinaryValue` as bytes). */
export interface MessageAttribute {
  readonly DataType: string;
  readonly StringValue?: string;
  readonly BinaryValue?: Buffer;
}

/** A queue's settable attributes, in SQS's own names and units (seconds, bytes). */
export interface QueueSettings {
  readonly VisibilityTimeout: number;
  readonly DelaySeconds: number;
  readonly MessageRetentionPeriod: number;
  readonly MaximumMessageSize: number;
  readonly ReceiveMessageWaitTimeSeconds: number;
  readonly RedrivePolicy?: { readonly deadLetterTargetArn: string; readonly maxReceiveCount: number };
}

/** SQS's bounds for each numeric queue attribute, and its defaults. */
export const QUEUE_LIMITS = {
  VisibilityTimeout: { min: 0, max: 43_200, default: 30 },
  DelaySeconds: { min: 0, max: 900, default: 0 },
  MessageRetentionPeriod: { min: 60, max: 1_209_600, default: 345_600 },
  MaximumMessageSize: { min: 1024, max: 262_144, default: 262_144 },
  ReceiveMessageWaitTimeSeconds: { min: 0, max: 20, default: 0 },
} as const;

/** One message as a receive hands it out. */
export interface ReceivedMessage {
  readonly messageId: string;
  readonly receiptHandle: string;
  readonly body: string;
  readonly md5OfBody: string;
  readonly md5OfMessageAttributes?: string;
  readonly messageAttributes: Readonly<Record<string, MessageAttribute>>;
  readonly attributes: {
    readonly ApproximateReceiveCount: string;
    readonly SentTimestamp: string;
    readonly SenderId: string;
    readonly ApproximateFirstReceiveTimestamp: string;
  };
}

interface Message {
  readonly id: string;
  readonly body: string;
  readonly md5OfBody: string;
  readonly md5OfMessageAttributes: string | undefined;
  readonly messageAttributes: Readonly<Record<string, MessageAttribute>>;
  readonly senderId: string;
  /** Wall-clock epoch ms, as SentTimestamp reports it. */
  readonly sentAt: number;
  /** Simulated seconds: when the message entered its first queue (retention counts from there, DLQ included). */
  readonly enqueuedAt: number;
  /** Simulated seconds: before this the message is delayed (never received) or in flight. */
  visibleAt: number;
  receiveCount: number;
  firstReceivedAt: number | undefined;
  /** The receipt handle of the latest receive: only it deletes or changes visibility. */
  handle: string | undefined;
  /** A copy a storage server kept (at-least-once delivery): it never makes further copies. */
  readonly copy: boolean;
}

export interface SqsOptions {
  readonly clock: Clock;
  readonly account: string;
  readonly region: string;
  /** Who SenderId names for every message (the caller's IAM identity). */
  readonly senderId: string;
  /** Probability that a receive leaves a copy behind that a later receive hands out again. */
  readonly duplicateRate: number;
  /** Uniform in [0, 1), seeded for repeatable runs. */
  readonly random: () => number;
}

/** Simulated seconds since the epoch, on the control plane's clock. */
function simulatedNow(clock: Clock): number {
  return (Date.now() * clock.scale) / 1000;
}

/** One standard queue. */
export class Queue {
  readonly #messages: Message[] = [];
  readonly #waiters = new Set<() => void>();
  public readonly createdAt = Date.now();
  public modifiedAt = Date.now();
  #purgedAt = Number.NEGATIVE_INFINITY;

  public constructor(
    public readonly name: string,
    public readonly arn: string,
    public readonly url: string,
    public settings: QueueSettings,
    private readonly owner: Sqs,
  ) {}

  /** Counts by state, as GetQueueAttributes approximates them. */
  public counts(): { visible: number; notVisible: number; delayed: number } {
    const now = this.#expire();
    let visible = 0;
    let notVisible = 0;
    let delayed = 0;
    for (const message of this.#messages) {
      if (message.visibleAt <= now) visible++;
      else if (message.receiveCount === 0) delayed++;
      else notVisible++;
    }
    return { visible, notVisible, delayed };
  }

  /** Adds a message; `delaySeconds` undefined takes the queue's DelaySeconds. */
  public send(
    body: string,
    messageAttributes: Readonly<Record<string, MessageAttribute>>,
    delaySeconds: number | undefined,
  ): { id: string; md5OfBody: string; md5OfMessageAttributes: string | undefined } {
    const now = simulatedNow(this.owner.clock);
    const message: Message = {
      id: uuid(),
      body,
      md5OfBody: md5(body),
      md5OfMessageAttributes: attributesMd5(messageAttributes),
      messageAttributes,
      senderId: this.owner.senderId,
      sentAt: Date.now(),
      enqueuedAt: now,
      visibleAt: now + (delaySeconds ?? this.settings.DelaySeconds),
      receiveCount: 0,
      firstReceivedAt: undefined,
      handle: undefined,
      copy: false,
    };
    this.#add(message);
    return {
      id: message.id,
      md5OfBody: message.md5OfBody,
      md5OfMessageAttributes: message.md5OfMessageAttributes,
    };
  }

  /**
   * Receives up to `max` visible messages, waiting up to `waitSeconds` (simulated) for the
   * first one. Each gets a new receipt handle and stays invisible for `visibilitySeconds`;
   * one past its redrive policy's maxReceiveCount moves to the dead-letter queue instead.
   */
  public async receive(
    max: number,
    visibilitySeconds: number,
    waitSeconds: number,
  ): Promise<ReceivedMessage[]> {
    const until = simulatedNow(this.owner.clock) + waitSeconds;
    for (;;) {
      const received = this.#take(max, visibilitySeconds);
      const left = until - simulatedNow(this.owner.clock);
      if (received.length > 0 || left <= 0) return received;
      await this.#waitForChange(left);
    }
  }

  /** Deletes by receipt handle. False when the handle names no message (deleted already, or never). */
  public delete(handle: string): boolean {
    const index = this.#messages.findIndex((m) => m.handle === handle);
    if (index < 0) return false;
    this.#messages.splice(index, 1);
    return true;
  }

  /** True when the handle is (or was) one this queue gave out. */
  public issued(handle: string): boolean {
    return this.owner.issued(handle, this);
  }

  /** Makes the message of `handle` visible again after `seconds`; throws MessageNotInflight when it is not in flight. */
  public changeVisibility(handle: string, seconds: number): void {
    const now = this.#expire();
    const message = this.#messages.find((m) => m.handle === handle);
    if (!message || message.visibleAt <= now) {
      throw new ApiError('MessageNotInflight', 'The message referred to is not in flight.');
    }
    message.visibleAt = now + seconds;
    this.#wakeAt(message.visibleAt);
  }

  /** Removes every message; a second purge within 60 seconds is refused, as AWS refuses it. */
  public purge(): void {
    const now = simulatedNow(this.owner.clock);
    if (now - this.#purgedAt < 60) {
      throw new ApiError(
        'PurgeQueueInProgress',
        `Only one PurgeQueue operation on ${this.name} is allowed every 60 seconds.`,
        403,
      );
    }
    this.#purgedAt = now;
    this.#messages.length = 0;
  }

  /** A message moved here from the queue whose redrive policy names this one. */
  public adopt(message: Message): void {
    this.#add({ ...message, visibleAt: simulatedNow(this.owner.clock), handle: undefined });
  }

  #add(message: Message): void {
    this.#messages.push(message);
    this.#wakeAt(message.visibleAt);
  }

  #take(max: number, visibilitySeconds: number): ReceivedMessage[] {
    const now = this.#expire();
    const out: ReceivedMessage[] = [];
    const redrive = this.settings.RedrivePolicy;
    for (const message of [...this.#messages]) {
      if (out.length >= max) break;
      if (message.visibleAt > now) continue;
      if (redrive && message.receiveCount >= redrive.maxReceiveCount) {
        const target = this.owner.queueByArn(redrive.deadLetterTargetArn);
        if (target) {
          this.#messages.splice(this.#messages.indexOf(message), 1);
          target.adopt(message);
          continue;
        }
      }
      message.receiveCount++;
      message.firstReceivedAt ??= Date.now();
      message.handle = this.owner.issue(this, message.id);
      message.visibleAt = now + visibilitySeconds;
      this.#wakeAt(message.visibleAt);
      out.push(received(message, message.handle));
      if (!message.copy && this.owner.duplicate()) {
        // A copy on a storage server the receive missed: handed out again by a later receive
        // and not deleted with the original (SQS's at-least-once delivery).
        this.#add({ ...message, copy: true, visibleAt: now, handle: undefined });
      }
    }
    return out;
  }

  /** Drops messages past the retention period; returns the simulated now. */
  #expire(): number {
    const now = simulatedNow(this.owner.clock);
    const retention = this.settings.MessageRetentionPeriod;
    for (let i = this.#messages.length - 1; i >= 0; i--) {
      if (now - (this.#messages[i] as Message).enqueuedAt >= retention) this.#messages.splice(i, 1);
    }
    return now;
  }

  #waitForChange(seconds: number): Promise<void> {
    return new Promise((resolve) => {
      const waiter = () => {
        cancel();
        this.#waiters.delete(waiter);
        resolve();
      };
      const cancel = this.owner.clock.after(seconds, waiter);
      this.#waiters.add(waiter);
    });
  }

  /** Wakes long polls when a message becomes visible at simulated time `at`. */
  #wakeAt(at: number): void {
    const wake = () => {
      const waiters = [...this.#waiters];
      this.#waiters.clear();
      for (const waiter of waiters) waiter();
    };
    const delay = at - simulatedNow(this.owner.clock);
    if (delay <= 0) wake();
    else this.owner.clock.after(delay, wake);
  }
}

function received(message: Message, handle: string): ReceivedMessage {
  return {
    messageId: message.id,
    receiptHandle: handle,
    body: message.body,
    md5OfBody: message.md5OfBody,
    ...(message.md5OfMessageAttributes ? { md5OfMessageAttributes: message.md5OfMessageAttributes } : {}),
    messageAttributes: message.messageAttributes,
    attributes: {
      ApproximateReceiveCount: String(message.receiveCount),
      SentTimestamp: String(message.sentAt),
      SenderId: message.senderId,
      ApproximateFirstReceiveTimestamp: String(message.firstReceivedAt ?? Date.now()),
    },
  };
}

/**
 * Simple Queue Service: standard queues with per-message delay, visibility timeouts,
 * at-least-once delivery (a seeded rate of duplicates), redrive to a dead-letter queue
 * and retention, on the control plane's clock.
 */
export class Sqs {
  readonly #queues = new Map<string, Queue>();
  /** Receipt handles given out, to tell a stale handle (accepted) from a made-up one (refused). */
  readonly #handles = new Map<string, Queue>();
  public readonly clock: Clock;
  public readonly senderId: string;
  public duplicateRate: number;
  /** The endpoint queue URLs start with, known once the server listens. */
  public endpoint = '';

  public constructor(private readonly options: SqsOptions) {
    this.clock = options.clock;
    this.senderId = options.senderId;
    this.duplicateRate = options.duplicateRate;
  }

  /** Creates a queue (or returns the same one when the settings match, as CreateQueue does). */
  public createQueue(name: string, settings: Partial<QueueSettings> = {}): Queue {
    const full: QueueSettings = {
      VisibilityTimeout: settings.VisibilityTimeout ?? QUEUE_LIMITS.VisibilityTimeout.default,
      DelaySeconds: settings.DelaySeconds ?? QUEUE_LIMITS.DelaySeconds.default,
      MessageRetentionPeriod: settings.MessageRetentionPeriod ?? QUEUE_LIMITS.MessageRetentionPeriod.default,
      MaximumMessageSize: settings.MaximumMessageSize ?? QUEUE_LIMITS.MaximumMessageSize.default,
      ReceiveMessageWaitTimeSeconds:
        settings.ReceiveMessageWaitTimeSeconds ?? QUEUE_LIMITS.ReceiveMessageWaitTimeSeconds.default,
      ...(settings.RedrivePolicy ? { RedrivePolicy: settings.RedrivePolicy } : {}),
    };
    const existing = this.#queues.get(name);
    if (existing) {
      if (JSON.stringify(existing.settings) !== JSON.stringify(full)) {
        throw new ApiError(
          'QueueNameExists',
          'A queue already exists with the same name and a different value for attribute(s)',
        );
      }
      return existing;
    }
    const { account, region } = this.options;
    const queue = new Queue(
      name,
      `arn:aws:sqs:${region}:${account}:${name}`,
      `${this.endpoint}/${account}/${name}`,
      full,
      this,
    );
    this.#queues.set(name, queue);
    return queue;
  }

  /** The queue named `name`; throws QueueDoesNotExist. */
  public queue(name: string): Queue {
    const queue = this.#queues.get(name);
    if (!queue) throw new ApiError('QueueDoesNotExist', 'The specified queue does not exist.');
    return queue;
  }

  /** The queue a QueueUrl names (its last path segment, in this account); throws QueueDoesNotExist. */
  public queueByUrl(url: string): Queue {
    const [name, account] = url.split('/').reverse();
    if (account !== this.options.account) return this.queue('');
    return this.queue(name ?? '');
  }

  public queueByArn(arn: string): Queue | undefined {
    return [...this.#queues.values()].find((q) => q.arn === arn);
  }

  /** @internal a new receipt handle for a message of `queue` */
  public issue(queue: Queue, messageId: string): string {
    const handle = Buffer.concat([Buffer.from(`${messageId} `), randomBytes(48)]).toString('base64');
    this.#handles.set(handle, queue);
    return handle;
  }

  /** @internal */
  public issued(handle: string, queue: Queue): boolean {
    return this.#handles.get(handle) === queue;
  }

  /** @internal whether this receive leaves a duplicate behind */
  public duplicate(): boolean {
    return this.duplicateRate > 0 && this.options.random() < this.duplicateRate;
  }
}

export function md5(text: string | Buffer): string {
  return createHash('md5').update(text).digest('hex');
}

/**
 * MD5OfMessageAttributes as SQS computes it: per attribute in name order, each of name,
 * data type and value as a 4-byte big-endian length and its bytes, a transport byte
 * (1 string, 2 binary) before the value.
 */
export function attributesMd5(attributes: Readonly<Record<string, MessageAttribute>>): string | undefined {
  const names = Object.keys(attributes).sort();
  if (names.length === 0) return undefined;
  const parts: Buffer[] = [];
  const field = (bytes: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    parts.push(length, bytes);
  };
  for (const name of names) {
    const attribute = attributes[name] as MessageAttribute;
    field(Buffer.from(name, 'utf8'));
    field(Buffer.from(attribute.DataType, 'utf8'));
    if (attribute.BinaryValue !== undefined) {
      parts.push(Buffer.from([2]));
      field(attribute.BinaryValue);
    } else {
      parts.push(Buffer.from([1]));
      field(Buffer.from(attribute.StringValue ?? '', 'utf8'));
    }
  }
  return md5(Buffer.concat(parts));
}
