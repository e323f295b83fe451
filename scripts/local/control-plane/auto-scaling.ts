import { LAUNCH_DETAIL_TYPE } from '../../../functions/shared/event-patterns';
import type { LifecycleResult } from '../../../functions/shared/lifecycle-result';
import { ApiError } from './api-error';
import type { Clock } from './clock';
import type { EventBus } from './event-bus';
import { instanceId, isoSeconds, uuid } from './ids';

export const LAUNCHING = 'autoscaling:EC2_INSTANCE_LAUNCHING';
/** Where a launch lifecycle event says an instance comes from or goes to. */
export type Place = 'EC2' | 'AutoScalingGroup' | 'WarmPool';
/** What a warmed instance does once its warm-pool wait ends. */
export type PoolState = 'Stopped' | 'Running' | 'Hibernated';

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

/** A warm pool as PutWarmPool defines it. */
export interface WarmPoolSpec {
  /** @default 0 */
  readonly minSize?: number;
  /** Instances in service plus warmed. @default the group's MaxSize */
  readonly maxGroupPreparedCapacity?: number;
  /** @default 'Stopped' */
  readonly poolState?: PoolState;
  /** Scale-in returns instances to the pool instead of terminating them. @default false */
  readonly reuseOnScaleIn?: boolean;
}

export interface WarmPool {
  readonly minSize: number;
  readonly maxGroupPreparedCapacity?: number;
  readonly poolState: PoolState;
  readonly reuseOnScaleIn: boolean;
  /** Warmed instances (not part of the group's capacity). */
  readonly instances: Map<string, Instance>;
}

/** A scaling activity as DescribeScalingActivities reports it. */
export interface Activity {
  readonly id: string;
  readonly groupName: string;
  readonly description: string;
  readonly cause: string;
  readonly startedAt: number;
  readonly details: string;
  endedAt?: number;
  statusCode: string;
  statusMessage?: string;
  progress: number;
}

/** Activity status codes after which an activity no longer changes. */
const FINAL_ACTIVITY_STATUSES: ReadonlySet<string> = new Set(['Successful', 'Failed', 'Cancelled']);

export interface Hook {
  readonly name: string;
  readonly heartbeatTimeout: number;
  readonly globalTimeout: number;
  readonly defaultResult: LifecycleResult;
  readonly notificationMetadata?: string;
}

export interface LifecycleAction {
  readonly token: string;
  readonly hook: Hook;
  readonly globalDeadline: number;
  /** Where the wait leads: into service, or into the warm pool. */
  readonly destination: 'AutoScalingGroup' | 'WarmPool';
  cancelTimeout: () => void;
}

export interface Instance {
  readonly id: string;
  readonly groupName: string;
  readonly availabilityZone: string;
  readonly launchedAt: number;
  state: string;
  /** Its lifecycle actions while it waits, one per launch hook, by hook name. */
  readonly actions: Map<string, LifecycleAction>;
  /** The activity of the instance's latest launch (into service, into or from the warm pool). */
  activity?: Activity;
}

export interface Group {
  readonly name: string;
  readonly arn: string;
  readonly createdAt: number;
  readonly minSize: number;
  readonly maxSize: number;
  desiredCapacity: number;
  /** Launch hooks by name; an instance waits for all of them. */
  readonly hooks: Map<string, Hook>;
  warmPool?: WarmPool;
  readonly tags: Readonly<Record<string, string>>;
  /** Instances in the group (in service or on their way), not the warmed ones. */
  readonly instances: Map<string, Instance>;
  /** Scaling activities, oldest first. */
  readonly activities: Activity[];
}

/**
 * What happened to an instance, for the fleet simulator and progress displays: a new EC2
 * instance boots ('launched'), a stopped warmed one boots again ('started'), a warmed one
 * stops ('stopped'), a wait ends ('completed'), the instance is gone ('terminated').
 */
export type InstanceChange =
  | { readonly kind: 'launched'; readonly instance: Instance }
  | { readonly kind: 'started'; readonly instance: Instance }
  | { readonly kind: 'stopped'; readonly instance: Instance }
  | {
      readonly kind: 'completed';
      readonly instance: Instance;
      readonly hookName: string;
      readonly result: LifecycleResult;
      readonly reason: 'api' | 'timeout';
      /** Where the wait that ended was leading. */
      readonly destination: 'AutoScalingGroup' | 'WarmPool';
    }
  | { readonly kind: 'terminated'; readonly instance: Instance };

const MAX_GLOBAL_TIMEOUT = 172_800;
/** Launch and terminate hooks a group may have (AWS's quota). */
const MAX_HOOKS = 50;
/** EnterStandby and ExitStandby take at most this many instances per call. */
export const MAX_STANDBY_INSTANCES = 20;
/** States of an instance on its way to standby or in it: outside the group's capacity. */
const STANDBY_STATES: ReadonlySet<string> = new Set(['EnteringStandby', 'Standby']);
/** Simulated seconds an instance spends in EnteringStandby, or Pending on its way out of standby. */
const STANDBY_TRANSITION_SECONDS = 1;
/** What a launch's activity reports while its lifecycle action waits (the console shows about 30 %). */
const WAITING_PROGRESS = 30;

/**
 * Auto Scaling groups, their launch lifecycle hooks, warm pools, scaling activities and
 * instances, with the semantics selfdeploy depends on: a launch behind hooks waits in
 * Pending:Wait (or Warmed:Pending:Wait entering a warm pool) and fires one lifecycle event
 * per hook, each with its own token; CONTINUE of every hook puts it in service (or warms
 * it); ABANDON, or a hook's default result on timeout, terminates it and the group launches
 * a replacement. Every launch is a scaling activity.
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

  /** Calls `listener` on every launch, start, stop, lifecycle completion and termination. */
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
    if (desired < minSize || desired > maxSize) {
      throw new ApiError(
        'ValidationError',
        `Desired capacity:${desired} must be between the specified min size:${minSize} and max size:${maxSize}`,
      );
    }
    const group: Group = {
      name: spec.name,
      arn: `arn:aws:autoscaling:${this.region}:${this.account}:autoScalingGroup:${uuid()}:autoScalingGroupName/${spec.name}`,
      createdAt: Date.now(),
      minSize,
      maxSize,
      desiredCapacity: desired,
      tags: spec.tags ?? {},
      hooks: new Map(),
      instances: new Map(),
      activities: [],
    };
    this.#groups.set(spec.name, group);
    // The hook is in place before the first launch, as when both come from one template.
    if (spec.hook) this.putLifecycleHook(spec.name, spec.hook);
    this.#fillCapacity(group, 0);
    return group;
  }

  /** Adds or replaces a launch hook of the group. Like AWS, it applies only to later launches. */
  public putLifecycleHook(groupName: string, spec: HookSpec): Hook {
    const group = this.group(groupName);
    const heartbeatTimeout = spec.heartbeatTimeout ?? 3600;
    if (heartbeatTimeout < 30 || heartbeatTimeout > 7200) {
      throw new ApiError(
        'ValidationError',
        `HeartbeatTimeout must be between 30 and 7200 seconds, got ${heartbeatTimeout}`,
      );
    }
    if (!group.hooks.has(spec.name) && group.hooks.size >= MAX_HOOKS) {
      throw new ApiError(
        'LimitExceeded',
        `Auto Scaling group ${groupName} already has the maximum of ${MAX_HOOKS} lifecycle hooks`,
      );
    }
    const hook: Hook = {
      name: spec.name,
      heartbeatTimeout,
      globalTimeout: Math.min(MAX_GLOBAL_TIMEOUT, 100 * heartbeatTimeout),
      defaultResult: spec.defaultResult ?? 'ABANDON',
      ...(spec.notificationMetadata === undefined ? {} : { notificationMetadata: spec.notificationMetadata }),
    };
    group.hooks.set(hook.name, hook);
    return hook;
  }

  /**
   * Adds or replaces the group's warm pool and fills it: new instances launch into it,
   * wait at Warmed:Pending:Wait behind the launch hook, then stop (or keep running).
   */
  public putWarmPool(groupName: string, spec: WarmPoolSpec): WarmPool {
    const group = this.group(groupName);
    const minSize = spec.minSize ?? 0;
    if (minSize < 0) throw new ApiError('ValidationError', `MinSize must be at least 0, got ${minSize}`);
    const prepared = spec.maxGroupPreparedCapacity;
    if (prepared !== undefined && prepared !== -1 && prepared < group.minSize) {
      throw new ApiError(
        'ValidationError',
        `MaxGroupPreparedCapacity ${prepared} must be -1 or at least the group's MinSize ${group.minSize}`,
      );
    }
    group.warmPool = {
      minSize,
      ...(prepared === undefined || prepared === -1 ? {} : { maxGroupPreparedCapacity: prepared }),
      poolState: spec.poolState ?? 'Stopped',
      reuseOnScaleIn: spec.reuseOnScaleIn ?? false,
      instances: group.warmPool?.instances ?? new Map(),
    };
    this.#fillCapacity(group, group.desiredCapacity);
    return group.warmPool;
  }

  public setDesiredCapacity(groupName: string, desired: number): void {
    const group = this.group(groupName);
    checkDesired(desired, group.minSize, group.maxSize);
    const before = group.desiredCapacity;
    group.desiredCapacity = desired;
    this.#fillCapacity(group, before);
  }

  /**
   * EnterStandby: InService instances go EnteringStandby, then Standby, each with an
   * activity. With `decrement` the desired capacity drops by their number, never below
   * MinSize; without, the group launches replacements. Returns the activities.
   */
  public enterStandby(groupName: string, ids: readonly string[], decrement: boolean): Activity[] {
    const group = this.group(groupName);
    const instances = this.#standbyInstances(group, ids, 'InService');
    const before = group.desiredCapacity;
    if (decrement && before - instances.length < group.minSize) {
      throw sizesError(group, `place into standby ${count(instances.length)}`);
    }
    if (decrement) group.desiredCapacity -= instances.length;
    const now = isoSeconds(Date.now());
    const activities = instances.map((instance) =>
      this.#moveStandby(group, instance, {
        via: 'EnteringStandby',
        to: 'Standby',
        progress: 50,
        description: `Moving EC2 instance to Standby: ${instance.id}`,
        cause: decrement
          ? `At ${now} instance ${instance.id} was moved to standby in response to a user request, shrinking the capacity from ${before} to ${group.desiredCapacity}.`
          : `At ${now} instance ${instance.id} was moved to standby in response to a user request.`,
      }),
    );
    if (!decrement) this.#fillCapacity(group, before);
    return activities;
  }

  /**
   * ExitStandby: Standby instances go Pending, then InService, and the desired capacity
   * grows by their number, never above MaxSize. Launch hooks do not run again: AWS applies
   * them only to newly launched instances.
   */
  public exitStandby(groupName: string, ids: readonly string[]): Activity[] {
    const group = this.group(groupName);
    const instances = this.#standbyInstances(group, ids, 'Standby');
    const before = group.desiredCapacity;
    if (before + instances.length > group.maxSize) {
      throw sizesError(group, `exit standby ${count(instances.length)}`);
    }
    group.desiredCapacity += instances.length;
    const now = isoSeconds(Date.now());
    return instances.map((instance) =>
      this.#moveStandby(group, instance, {
        via: 'Pending',
        to: 'InService',
        progress: 30,
        description: `Moving EC2 instance out of Standby: ${instance.id}`,
        cause: `At ${now} instance ${instance.id} was moved out of standby in response to a user request, increasing the capacity from ${before} to ${group.desiredCapacity}.`,
      }),
    );
  }

  /**
   * Moves an instance into or out of standby: `via` at once, with an activity at `progress`,
   * then `to` after STANDBY_TRANSITION_SECONDS unless something else moved it meanwhile.
   */
  #moveStandby(
    group: Group,
    instance: Instance,
    move: { via: string; to: string; progress: number; description: string; cause: string },
  ): Activity {
    instance.state = move.via;
    const activity = this.#activity(group, move.description, move.cause);
    activity.progress = move.progress;
    this.clock.after(STANDBY_TRANSITION_SECONDS, () => {
      if (instance.state !== move.via) return;
      instance.state = move.to;
      endActivity(activity, 'Successful');
    });
    return activity;
  }

  public completeLifecycleAction(ref: ActionRef, result: string): void {
    if (result !== 'CONTINUE' && result !== 'ABANDON') {
      throw new ApiError(
        'ValidationError',
        `Invalid LifecycleActionResult: ${result}. Valid values are CONTINUE and ABANDON`,
      );
    }
    const [instance, action] = this.#activeAction(ref);
    this.#finish(instance, action, result, 'api');
  }

  public recordHeartbeat(ref: ActionRef): void {
    const [instance, action] = this.#activeAction(ref);
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

  /** Instances in a group or its warm pool (terminated ones have left). */
  public instance(id: string): Instance | undefined {
    return this.#instances.get(id);
  }

  /** The instance one of whose active lifecycle actions has this token. */
  public instanceByToken(token: string): Instance | undefined {
    return [...this.#instances.values()].find((instance) =>
      [...instance.actions.values()].some((action) => action.token === token),
    );
  }

  /** Every instance of every group, warmed ones included. */
  public instances(): Instance[] {
    return [...this.#instances.values()];
  }

  /**
   * A group's activities as DescribeScalingActivities lists them: those still in progress
   * first, each part newest first.
   */
  public activities(groupName?: string): Activity[] {
    const all =
      groupName === undefined ? this.groups() : this.#groups.has(groupName) ? [this.group(groupName)] : [];
    const newestFirst = (a: Activity, b: Activity) => b.startedAt - a.startedAt;
    // Reversed first, so activities that started in the same millisecond list newest first too.
    const activities = all.flatMap((group) => group.activities).reverse();
    return [
      ...activities.filter((a) => !FINAL_ACTIVITY_STATUSES.has(a.statusCode)).sort(newestFirst),
      ...activities.filter((a) => FINAL_ACTIVITY_STATUSES.has(a.statusCode)).sort(newestFirst),
    ];
  }

  /** Stops all lifecycle timers. */
  public stop(): void {
    for (const instance of this.#instances.values()) cancelActions(instance);
  }

  /**
   * The action `ref` names. With both a token and an instance id, both must name the same
   * action (AWS does not document this case; the strict reading is the safe one).
   */
  #activeAction(ref: ActionRef): [Instance, LifecycleAction] {
    const group = this.group(ref.groupName);
    const waiting = [...group.instances.values(), ...(group.warmPool?.instances.values() ?? [])];
    for (const instance of waiting) {
      const action = instance.actions.get(ref.hookName);
      if (
        action !== undefined &&
        (ref.token !== undefined || ref.instanceId !== undefined) &&
        (ref.token === undefined || action.token === ref.token) &&
        (ref.instanceId === undefined || instance.id === ref.instanceId)
      ) {
        return [instance, action];
      }
    }
    const what = ref.token ? `token ${ref.token}` : `instance ID ${ref.instanceId ?? ''}`;
    throw new ApiError('ValidationError', `No active Lifecycle Action found with ${what}`);
  }

  /** The instances a standby call names, each in the group and in `state`, else AWS's error. */
  #standbyInstances(group: Group, ids: readonly string[], state: 'InService' | 'Standby'): Instance[] {
    return ids.map((id) => {
      const instance = group.instances.get(id);
      if (!instance) {
        throw new ApiError(
          'ValidationError',
          `The instance ${id} is not part of Auto Scaling group ${group.name}.`,
        );
      }
      if (instance.state !== state) {
        throw new ApiError('ValidationError', `The instance ${id} is not in ${state}.`);
      }
      return instance;
    });
  }

  /** Brings the group to its desired capacity (from `before`), then its warm pool to its size. */
  #fillCapacity(group: Group, before: number): void {
    // Instances on standby are in the group but not in its capacity.
    const live = [...group.instances.values()].filter(
      (i) => !i.state.startsWith('Terminating') && !STANDBY_STATES.has(i.state),
    );
    for (let capacity = live.length; capacity < group.desiredCapacity; capacity++) {
      const warmed = this.#readyWarmedInstance(group);
      if (warmed) this.#leavePool(group, warmed, live.length);
      else this.#launch(group, 'AutoScalingGroup', live.length, group.desiredCapacity);
    }
    // Scale-in takes the newest instances first, so a deploy in progress is what stops.
    const extra = live
      .sort((a, b) => b.launchedAt - a.launchedAt)
      .slice(0, Math.max(0, live.length - group.desiredCapacity));
    for (const instance of extra) {
      if (group.warmPool?.reuseOnScaleIn) this.#returnToPool(group, instance);
      else this.#terminate(instance, `shrinking the capacity from ${before} to ${group.desiredCapacity}`);
    }
    const pool = group.warmPool;
    if (!pool) return;
    const target = Math.max(
      pool.minSize,
      (pool.maxGroupPreparedCapacity ?? group.maxSize) - group.desiredCapacity,
    );
    const warmed = pool.instances.size;
    for (let size = warmed; size < target; size++) this.#launch(group, 'WarmPool', warmed, target);
  }

  #readyWarmedInstance(group: Group): Instance | undefined {
    return [...(group.warmPool?.instances.values() ?? [])].find((i) => i.actions.size === 0);
  }

  /** A new EC2 instance, into service or into the warm pool. */
  #launch(group: Group, destination: 'AutoScalingGroup' | 'WarmPool', from: number, to: number): void {
    const instance: Instance = {
      id: instanceId(),
      groupName: group.name,
      availabilityZone: `${this.region}a`,
      launchedAt: Date.now(),
      state: destination === 'WarmPool' ? 'Warmed:Pending' : 'Pending',
      actions: new Map(),
    };
    (destination === 'WarmPool' ? (group.warmPool as WarmPool).instances : group.instances).set(
      instance.id,
      instance,
    );
    this.#instances.set(instance.id, instance);
    const now = isoSeconds(Date.now());
    instance.activity = this.#activity(
      group,
      destination === 'WarmPool'
        ? `Launching a new EC2 instance into warm pool: ${instance.id}`
        : `Launching a new EC2 instance: ${instance.id}`,
      destination === 'WarmPool'
        ? `At ${now} an instance was launched into the warm pool in response to a difference between the warm pool's desired and actual size, increasing it from ${from} to ${to}.`
        : `At ${now} an instance was started in response to a difference between desired and actual capacity, increasing the capacity from ${from} to ${to}.`,
    );
    this.#notify({ kind: 'launched', instance });
    this.#wait(group, instance, 'EC2', destination);
  }

  /** A warmed instance goes into service: it starts if stopped and waits behind the hook again. */
  #leavePool(group: Group, instance: Instance, from: number): void {
    group.warmPool?.instances.delete(instance.id);
    group.instances.set(instance.id, instance);
    const wasStopped = instance.state !== 'Warmed:Running';
    instance.state = 'Pending';
    instance.activity = this.#activity(
      group,
      `Launching a new EC2 instance from warm pool: ${instance.id}`,
      `At ${isoSeconds(Date.now())} an instance was moved from the warm pool in response to a difference between desired and actual capacity, increasing the capacity from ${from} to ${group.desiredCapacity}.`,
    );
    if (wasStopped) this.#notify({ kind: 'started', instance });
    this.#wait(group, instance, 'WarmPool', 'AutoScalingGroup');
  }

  /** Scale-in with ReuseOnScaleIn: the instance stops and waits in the pool (no terminate hook here). */
  #returnToPool(group: Group, instance: Instance): void {
    cancelActions(instance);
    group.instances.delete(instance.id);
    group.warmPool?.instances.set(instance.id, instance);
    instance.state = 'Warmed:Stopped';
    this.#notify({ kind: 'stopped', instance });
  }

  /** Holds the instance behind every launch hook (each with a new token) and fires their events. */
  #wait(group: Group, instance: Instance, origin: Place, destination: 'AutoScalingGroup' | 'WarmPool'): void {
    if (group.hooks.size === 0) {
      this.#proceed(group, instance, destination);
      return;
    }
    instance.state = destination === 'WarmPool' ? 'Warmed:Pending:Wait' : 'Pending:Wait';
    const activity = instance.activity as Activity;
    activity.statusCode = 'MidLifecycleAction';
    activity.progress = WAITING_PROGRESS;
    for (const hook of group.hooks.values()) {
      const action: LifecycleAction = {
        token: uuid(),
        hook,
        destination,
        globalDeadline: Date.now() + this.clock.realMs(hook.globalTimeout),
        cancelTimeout: () => {},
      };
      instance.actions.set(hook.name, action);
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
            Origin: origin,
            Destination: destination,
          },
          [group.arn],
        ),
      );
    }
  }

  /** The wait (if any) ended with CONTINUE: in service, or warmed. */
  #proceed(group: Group, instance: Instance, destination: 'AutoScalingGroup' | 'WarmPool'): void {
    endActivity(instance.activity, 'Successful');
    if (destination === 'AutoScalingGroup') {
      instance.state = 'InService';
      return;
    }
    const poolState = group.warmPool?.poolState ?? 'Stopped';
    instance.state = `Warmed:${poolState}`;
    if (poolState !== 'Running') this.#notify({ kind: 'stopped', instance });
  }

  #armTimeout(instance: Instance, action: LifecycleAction): void {
    // A heartbeat restarts the heartbeat timeout but never extends past the global timeout.
    const untilGlobal = ((action.globalDeadline - Date.now()) * this.clock.scale) / 1000;
    const seconds = Math.max(0, Math.min(action.hook.heartbeatTimeout, untilGlobal));
    action.cancelTimeout = this.clock.after(seconds, () => {
      if (instance.actions.get(action.hook.name) === action) {
        this.#finish(instance, action, action.hook.defaultResult, 'timeout');
      }
    });
  }

  /** One hook's action ended: the instance goes on once every hook has said CONTINUE; one ABANDON ends it. */
  #finish(
    instance: Instance,
    action: LifecycleAction,
    result: LifecycleResult,
    reason: 'api' | 'timeout',
  ): void {
    action.cancelTimeout();
    instance.actions.delete(action.hook.name);
    this.#notify({
      kind: 'completed',
      instance,
      hookName: action.hook.name,
      result,
      reason,
      destination: action.destination,
    });
    const group = this.#groups.get(instance.groupName);
    if (!group) return;
    if (result === 'CONTINUE') {
      if (instance.actions.size === 0) this.#proceed(group, instance, action.destination);
      return;
    }
    cancelActions(instance);
    endActivity(
      instance.activity,
      'Cancelled',
      `Instance failed to complete user's Lifecycle Action: Lifecycle Action with token ${action.token} was abandoned: ${
        reason === 'api' ? 'Lifecycle Action Completed with ABANDON Result' : 'Heartbeat Timeout'
      }`,
    );
    this.#terminate(instance, 'its launch lifecycle action was abandoned');
    this.#fillCapacity(group, group.desiredCapacity);
  }

  #terminate(instance: Instance, why: string): void {
    cancelActions(instance);
    instance.state = 'Terminated';
    // A launch still waiting when its instance goes (scale-in) ends with it.
    if (instance.activity && !FINAL_ACTIVITY_STATUSES.has(instance.activity.statusCode)) {
      endActivity(instance.activity, 'Cancelled', `Instance was terminated: ${why}`);
    }
    const group = this.#groups.get(instance.groupName);
    if (group) {
      const activity = this.#activity(
        group,
        `Terminating EC2 instance: ${instance.id}`,
        `At ${isoSeconds(Date.now())} an instance was taken out of service: ${why}.`,
      );
      endActivity(activity, 'Successful');
      group.instances.delete(instance.id);
      group.warmPool?.instances.delete(instance.id);
    }
    this.#instances.delete(instance.id);
    this.#notify({ kind: 'terminated', instance });
  }

  #activity(group: Group, description: string, cause: string): Activity {
    const activity: Activity = {
      id: uuid(),
      groupName: group.name,
      description,
      cause,
      startedAt: Date.now(),
      details: JSON.stringify({ 'Subnet ID': 'subnet-0local', 'Availability Zone': `${this.region}a` }),
      statusCode: 'InProgress',
      progress: 0,
    };
    group.activities.push(activity);
    return activity;
  }

  #notify(change: InstanceChange): void {
    for (const listener of this.#listeners) listener(change);
  }
}

/** Ends every wait of the instance (it leaves, or one hook abandoned it). */
function cancelActions(instance: Instance): void {
  for (const action of instance.actions.values()) action.cancelTimeout();
  instance.actions.clear();
}

function endActivity(activity: Activity | undefined, statusCode: string, statusMessage?: string): void {
  if (!activity) return;
  activity.statusCode = statusCode;
  activity.progress = 100;
  activity.endedAt = Date.now();
  if (statusMessage !== undefined) activity.statusMessage = statusMessage;
}

/** How CompleteLifecycleAction and RecordLifecycleActionHeartbeat name an action. */
export interface ActionRef {
  readonly groupName: string;
  readonly hookName: string;
  readonly token?: string;
  readonly instanceId?: string;
}

/** AWS's error for a standby call the group's sizes do not allow; `change` says what was asked. */
function sizesError(group: Group, change: string): ApiError {
  return new ApiError(
    'ValidationError',
    `AutoScalingGroup ${group.name} has min-size=${group.minSize}, max-size=${group.maxSize}, and desired-size=${group.desiredCapacity}. To ${change}, please update the AutoScalingGroup sizes appropriately.`,
  );
}

/** "1 instance", "2 instances", as AWS words its sizes errors. */
function count(instances: number): string {
  return `${instances} instance${instances === 1 ? '' : 's'}`;
}

function checkDesired(desired: number, min: number, max: number): void {
  if (desired > max)
    throw new ApiError(
      'ValidationError',
      `New SetDesiredCapacity value ${desired} is above max value ${max} for the AutoScalingGroup.`,
    );
  if (desired < min)
    throw new ApiError(
      'ValidationError',
      `New SetDesiredCapacity value ${desired} is below min value ${min} for the AutoScalingGroup.`,
    );
}
