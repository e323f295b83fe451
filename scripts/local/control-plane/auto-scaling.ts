import { LAUNCH_DETAIL_TYPE } from '../../../functions/shared/event-patterns';
import { ApiError } from './api-error';
import type { Clock } from './clock';
import type { EventBus } from './event-bus';
import { instanceId, uuid } from './ids';

export const LAUNCHING = 'autoscaling:EC2_INSTANCE_LAUNCHING';
export type LifecycleResult = 'CONTINUE' | 'ABANDON';

/** A launch lifecycle hook as PutLifecycleHook defines it. */
export interface HookSpec {
  readonly name: string;
  /** Seconds the instance waits without a heartbeat. @default 3600 */
  readonly heartbeatTimeout?: number;
  /** Applied when the wait times out. @default 'ABANDON' (the service default) */
  readonly defaultResult?: LifecycleResult;
  readonly notificationMetadata?: string;
}

/** A group as CreateAutoScalingGroup defines it. */
export interface GroupSpec {
  readonly name: string;
  readonly minSize?: number;
  readonly maxSize?: number;
  /** @default minSize */
  readonly desiredCapacity?: number;
  readonly hook?: HookSpec;
  readonly tags?: Readonly<Record<string, string>>;
}

export interface Hook {
  readonly name: string;
  readonly heartbeatTimeout: number;
  readonly globalTimeout: number;
  readonly defaultResult: LifecycleResult;
  readonly notificationMetadata?: string;
}

interface LifecycleAction {
  readonly token: string;
  readonly hook: Hook;
  readonly globalDeadline: number;
  cancelTimeout: () => void;
}

export interface Instance {
  readonly id: string;
  readonly groupName: string;
  readonly availabilityZone: string;
  readonly launchedAt: number;
  state: string;
  action?: LifecycleAction;
}

export interface Group {
  readonly name: string;
  readonly arn: string;
  readonly createdAt: number;
  readonly minSize: number;
  readonly maxSize: number;
  desiredCapacity: number;
  hook?: Hook;
  readonly tags: Readonly<Record<string, string>>;
  readonly instances: Map<string, Instance>;
}

/** What happened to an instance, for the fleet simulator and progress displays. */
export type InstanceChange =
  | { readonly kind: 'launched'; readonly instance: Instance }
  | {
      readonly kind: 'completed';
      readonly instance: Instance;
      readonly result: LifecycleResult;
      readonly reason: 'api' | 'timeout';
    }
  | { readonly kind: 'terminated'; readonly instance: Instance };

const MAX_GLOBAL_TIMEOUT = 172_800;

/**
 * Auto Scaling groups, their launch lifecycle hooks and instances, with the semantics
 * selfdeploy depends on: a launch behind a hook waits in Pending:Wait and fires the
 * lifecycle event; CONTINUE puts it in service; ABANDON or the hook's default result on
 * timeout terminates it and the group launches a replacement.
 */
export class AutoScaling {
  readonly #groups = new Map<string, Group>();
  readonly #instances = new Map<string, Instance>();
  readonly #listeners: ((change: InstanceChange) => void)[] = [];

  public constructor(
    private readonly clock: Clock,
    private readonly bus: EventBus,
    private readonly account: string,
    private readonly region: string,
  ) {}

  /** Calls `listener` on every launch, lifecycle completion and termination. */
  public onChange(listener: (change: InstanceChange) => void): void {
    this.#listeners.push(listener);
  }

  public createGroup(spec: GroupSpec): Group {
    if (this.#groups.has(spec.name)) {
      throw new ApiError(
        'AlreadyExists',
        `AutoScalingGroup by this name already exists - A group with the name ${spec.name} already exists`,
      );
    }
    const minSize = spec.minSize ?? 0;
    const maxSize = spec.maxSize ?? Math.max(minSize, spec.desiredCapacity ?? 0);
    const desired = spec.desiredCapacity ?? minSize;
    if (minSize > maxSize) {
      throw new ApiError(
        'ValidationError',
        `Max bound, ${maxSize}, must be greater than or equal to min bound, ${minSize}`,
      );
    }
    checkDesired(desired, minSize, maxSize);
    const group: Group = {
      name: spec.name,
      arn: `arn:aws:autoscaling:${this.region}:${this.account}:autoScalingGroup:${uuid()}:autoScalingGroupName/${spec.name}`,
      createdAt: Date.now(),
      minSize,
      maxSize,
      desiredCapacity: desired,
      tags: spec.tags ?? {},
      instances: new Map(),
    };
    this.#groups.set(spec.name, group);
    // The hook is in place before the first launch, as when both come from one template.
    if (spec.hook) this.putLifecycleHook(spec.name, spec.hook);
    this.#fillCapacity(group);
    return group;
  }

  /** Adds or replaces the group's launch hook. Like AWS, it applies only to later launches. */
  public putLifecycleHook(groupName: string, spec: HookSpec): Hook {
    const group = this.group(groupName);
    const heartbeatTimeout = spec.heartbeatTimeout ?? 3600;
    if (heartbeatTimeout < 30 || heartbeatTimeout > 7200) {
      throw new ApiError(
        'ValidationError',
        `HeartbeatTimeout must be between 30 and 7200 seconds, got ${heartbeatTimeout}`,
      );
    }
    if (group.hook && group.hook.name !== spec.name) {
      throw new ApiError(
        'LimitExceeded',
        `The local control plane simulates one launch lifecycle hook per group; ${groupName} has ${group.hook.name}`,
      );
    }
    group.hook = {
      name: spec.name,
      heartbeatTimeout,
      globalTimeout: Math.min(MAX_GLOBAL_TIMEOUT, 100 * heartbeatTimeout),
      defaultResult: spec.defaultResult ?? 'ABANDON',
      ...(spec.notificationMetadata === undefined ? {} : { notificationMetadata: spec.notificationMetadata }),
    };
    return group.hook;
  }

  public setDesiredCapacity(groupName: string, desired: number): void {
    const group = this.group(groupName);
    checkDesired(desired, group.minSize, group.maxSize, groupName);
    group.desiredCapacity = desired;
    this.#fillCapacity(group);
  }

  public completeLifecycleAction(ref: ActionRef, result: string): void {
    if (result !== 'CONTINUE' && result !== 'ABANDON') {
      throw new ApiError(
        'ValidationError',
        `Invalid LifecycleActionResult: ${result}. Valid values are CONTINUE and ABANDON`,
      );
    }
    const instance = this.#activeAction(ref);
    this.#finish(instance, result, 'api');
  }

  public recordHeartbeat(ref: ActionRef): void {
    const instance = this.#activeAction(ref);
    const action = instance.action as LifecycleAction;
    action.cancelTimeout();
    this.#armTimeout(instance, action);
  }

  public group(name: string): Group {
    const group = this.#groups.get(name);
    if (!group)
      throw new ApiError(
        'ValidationError',
        `AutoScalingGroup name not found - AutoScalingGroup '${name}' not found`,
      );
    return group;
  }

  public groups(): Group[] {
    return [...this.#groups.values()];
  }

  /** Instances currently in a group (terminated ones have left). */
  public instance(id: string): Instance | undefined {
    return this.#instances.get(id);
  }

  /** The instance whose active lifecycle action has this token. */
  public instanceByToken(token: string): Instance | undefined {
    return [...this.#instances.values()].find((instance) => instance.action?.token === token);
  }

  public instances(): Instance[] {
    return [...this.#instances.values()];
  }

  /** Stops all lifecycle timers. */
  public stop(): void {
    for (const instance of this.#instances.values()) instance.action?.cancelTimeout();
  }

  #activeAction(ref: ActionRef): Instance {
    const group = this.group(ref.groupName);
    const found = [...group.instances.values()].find(
      (instance) =>
        instance.action !== undefined &&
        instance.action.hook.name === ref.hookName &&
        (ref.token ? instance.action.token === ref.token : instance.id === ref.instanceId) &&
        (ref.instanceId === undefined || instance.id === ref.instanceId),
    );
    if (!found) {
      const what = ref.token ? `token ${ref.token}` : `instance ID ${ref.instanceId ?? ''}`;
      throw new ApiError('ValidationError', `No active Lifecycle Action found with ${what}`);
    }
    return found;
  }

  #fillCapacity(group: Group): void {
    const live = [...group.instances.values()].filter((i) => !i.state.startsWith('Terminating'));
    for (let n = live.length; n < group.desiredCapacity; n++) this.#launch(group);
    // Scale-in takes the newest instances first, so a deploy in progress is what stops.
    const extra = live
      .sort((a, b) => b.launchedAt - a.launchedAt)
      .slice(0, Math.max(0, live.length - group.desiredCapacity));
    for (const instance of extra) this.#terminate(instance);
  }

  #launch(group: Group): void {
    const instance: Instance = {
      id: instanceId(),
      groupName: group.name,
      availabilityZone: `${this.region}a`,
      launchedAt: Date.now(),
      state: 'Pending',
    };
    group.instances.set(instance.id, instance);
    this.#instances.set(instance.id, instance);
    this.#notify({ kind: 'launched', instance });
    const hook = group.hook;
    if (!hook) {
      instance.state = 'InService';
      return;
    }
    instance.state = 'Pending:Wait';
    const action: LifecycleAction = {
      token: uuid(),
      hook,
      globalDeadline: Date.now() + this.clock.realMs(hook.globalTimeout),
      cancelTimeout: () => {},
    };
    instance.action = action;
    this.#armTimeout(instance, action);
    this.bus.put(
      this.bus.event(
        'aws.autoscaling',
        LAUNCH_DETAIL_TYPE,
        {
          LifecycleActionToken: action.token,
          AutoScalingGroupName: group.name,
          LifecycleHookName: hook.name,
          EC2InstanceId: instance.id,
          LifecycleTransition: LAUNCHING,
          ...(hook.notificationMetadata === undefined
            ? {}
            : { NotificationMetadata: hook.notificationMetadata }),
          Origin: 'EC2',
          Destination: 'AutoScalingGroup',
        },
        [group.arn],
      ),
    );
  }

  #armTimeout(instance: Instance, action: LifecycleAction): void {
    // A heartbeat restarts the heartbeat timeout but never extends past the global timeout.
    const untilGlobal = ((action.globalDeadline - Date.now()) * this.clock.scale) / 1000;
    const seconds = Math.max(0, Math.min(action.hook.heartbeatTimeout, untilGlobal));
    action.cancelTimeout = this.clock.after(seconds, () => {
      if (instance.action === action) this.#finish(instance, action.hook.defaultResult, 'timeout');
    });
  }

  #finish(instance: Instance, result: LifecycleResult, reason: 'api' | 'timeout'): void {
    instance.action?.cancelTimeout();
    delete instance.action;
    this.#notify({ kind: 'completed', instance, result, reason });
    if (result === 'CONTINUE') {
      instance.state = 'InService';
      return;
    }
    this.#terminate(instance);
    const group = this.#groups.get(instance.groupName);
    if (group) this.#fillCapacity(group);
  }

  #terminate(instance: Instance): void {
    instance.action?.cancelTimeout();
    delete instance.action;
    instance.state = 'Terminated';
    this.#groups.get(instance.groupName)?.instances.delete(instance.id);
    this.#instances.delete(instance.id);
    this.#notify({ kind: 'terminated', instance });
  }

  #notify(change: InstanceChange): void {
    for (const listener of this.#listeners) listener(change);
  }
}

/** How CompleteLifecycleAction and RecordLifecycleActionHeartbeat name an action. */
export interface ActionRef {
  readonly groupName: string;
  readonly hookName: string;
  readonly token?: string;
  readonly instanceId?: string;
}

function checkDesired(desired: number, min: number, max: number, groupName?: string): void {
  const group = groupName ? ' for the AutoScalingGroup' : '';
  if (desired > max)
    throw new ApiError(
      'ValidationError',
      `New SetDesiredCapacity value ${desired} is above max value ${max}${group}.`,
    );
  if (desired < min)
    throw new ApiError(
      'ValidationError',
      `New SetDesiredCapacity value ${desired} is below min value ${min}${group}.`,
    );
}
