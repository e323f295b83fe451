import { isLifecycleResult, type LifecycleResult } from '../../../functions/shared/lifecycle-result';
import { ApiError } from './api-error';
import {
  type Activity,
  type AutoScaling,
  type Group,
  type Instance,
  MAX_STANDBY_INSTANCES,
  type PoolState,
} from './auto-scaling';

const XMLNS = 'http://autoscaling.amazonaws.com/doc/2011-01-01/';

/**
 * A form-encoded query request: `Action=…&Version=…&Names.member.1=…`. Auto Scaling's
 * awsQuery lists members as `Name.member.N`; EC2's flavour (Ec2Input) as `Name.N`.
 */
export class QueryInput {
  readonly #fields: URLSearchParams;

  public constructor(
    body: string,
    /** What stands between a list's name and its index. */
    private readonly listInfix = '.member',
  ) {
    this.#fields = new URLSearchParams(body);
  }

  public has(name: string): boolean {
    return this.#fields.has(name);
  }

  public get action(): string {
    return this.#fields.get('Action') ?? '';
  }

  public string(name: string): string | undefined {
    return this.#fields.get(name) ?? undefined;
  }

  public required(name: string): string {
    const value = this.string(name);
    if (value === undefined || value === '') {
      throw new ApiError(
        'ValidationError',
        `1 validation error detected: Value null at '${lowerFirst(name)}' failed to satisfy constraint: Member must not be null`,
      );
    }
    return value;
  }

  /** An integer parameter the operation cannot do without. */
  public requiredInt(name: string): number {
    this.required(name);
    return this.int(name) as number;
  }

  public int(name: string): number | undefined {
    const value = this.string(name);
    if (value === undefined) return undefined;
    const parsed = Number(value);
    if (!Number.isInteger(parsed))
      throw new ApiError('ValidationError', `${name} must be an integer, got ${value}`);
    return parsed;
  }

  /** A list's members: `Name.member.1`, `Name.member.2`, … (EC2: `Name.1`, …). */
  public list(name: string): string[] {
    const values: string[] = [];
    for (let i = 1; this.#fields.has(`${name}${this.listInfix}.${i}`); i++)
      values.push(this.#fields.get(`${name}${this.listInfix}.${i}`) ?? '');
    return values;
  }
}

type Xml = string | number | boolean | Date | undefined | readonly Xml[] | { readonly [key: string]: Xml };

/** Renders a value as awsQuery XML: objects → elements, lists → `<member>` elements. */
function toXml(value: Xml): string {
  if (value === undefined) return '';
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map((item: Xml) => `<member>${toXml(item)}</member>`).join('');
  if (typeof value === 'object') {
    return Object.entries(value as { [key: string]: Xml })
      .filter(([, v]) => v !== undefined)
      .map(([key, v]) => `<${key}>${toXml(v)}</${key}>`)
      .join('');
  }
  return escapeXml(String(value));
}

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A successful reply: `<XResponse><XResult>…</XResult><ResponseMetadata>…`. */
export function queryResponse(action: string, result: Xml | undefined, requestId: string): string {
  const body = result === undefined ? '' : `<${action}Result>${toXml(result)}</${action}Result>`;
  return `<?xml version="1.0"?>\n<${action}Response xmlns="${XMLNS}">${body}<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>\n`;
}

/** An error reply in awsQuery's shape. */
export function queryError(error: ApiError, requestId: string): string {
  return `<?xml version="1.0"?>\n<ErrorResponse xmlns="${XMLNS}"><Error><Type>${error.fault}</Type><Code>${escapeXml(error.code)}</Code><Message>${escapeXml(error.message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>\n`;
}

/** Instance ids an Auto Scaling request is about, to count calls per instance. */
export function queryInstanceIds(input: QueryInput, model: AutoScaling): string[] {
  const ids = [...input.list('InstanceIds')];
  const id = input.string('InstanceId');
  if (id) ids.push(id);
  const token = input.string('LifecycleActionToken');
  const byToken = token ? model.instanceByToken(token) : undefined;
  if (byToken && !ids.includes(byToken.id)) ids.push(byToken.id);
  return ids;
}

/** Runs one Auto Scaling action; returns the Result element's content (undefined: none). */
export function runQuery(model: AutoScaling, input: QueryInput): Xml | undefined {
  switch (input.action) {
    case 'CreateAutoScalingGroup': {
      const tags: Record<string, string> = {};
      for (let i = 1; input.string(`Tags.member.${i}.Key`) !== undefined; i++) {
        tags[input.string(`Tags.member.${i}.Key`) ?? ''] = input.string(`Tags.member.${i}.Value`) ?? '';
      }
      const name = input.required('AutoScalingGroupName');
      const minSize = input.requiredInt('MinSize');
      const maxSize = input.requiredInt('MaxSize');
      const desiredCapacity = input.int('DesiredCapacity');
      model.createGroup({
        name,
        minSize,
        maxSize,
        ...(desiredCapacity === undefined ? {} : { desiredCapacity }),
        tags,
      });
      return undefined;
    }
    case 'PutLifecycleHook': {
      const transition = input.string('LifecycleTransition') ?? 'autoscaling:EC2_INSTANCE_LAUNCHING';
      if (transition !== 'autoscaling:EC2_INSTANCE_LAUNCHING') {
        throw new ApiError(
          'ValidationError',
          `The local control plane simulates launch lifecycle hooks only, not ${transition}`,
        );
      }
      const heartbeatTimeout = input.int('HeartbeatTimeout');
      const defaultResult = input.string('DefaultResult');
      const notificationMetadata = input.string('NotificationMetadata');
      model.putLifecycleHook(input.required('AutoScalingGroupName'), {
        name: input.required('LifecycleHookName'),
        ...(heartbeatTimeout === undefined ? {} : { heartbeatTimeout }),
        ...(defaultResult === undefined ? {} : { defaultResult: lifecycleResult(defaultResult) }),
        ...(notificationMetadata === undefined ? {} : { notificationMetadata }),
      });
      return {};
    }
    case 'SetDesiredCapacity':
      model.setDesiredCapacity(input.required('AutoScalingGroupName'), input.requiredInt('DesiredCapacity'));
      return undefined;
    case 'CompleteLifecycleAction':
      model.completeLifecycleAction(actionRef(input), input.required('LifecycleActionResult'));
      return {};
    case 'RecordLifecycleActionHeartbeat':
      model.recordHeartbeat(actionRef(input));
      return {};
    case 'DescribeAutoScalingGroups': {
      const names = input.list('AutoScalingGroupNames');
      const groups = names.length > 0 ? model.groups().filter((g) => names.includes(g.name)) : model.groups();
      const page = paginate(groups, input, 50, 100);
      return { AutoScalingGroups: page.items.map(groupXml), NextToken: page.nextToken };
    }
    case 'DescribeAutoScalingInstances': {
      const ids = input.list('InstanceIds');
      atMost(ids, 'instanceIds', 50);
      // Unknown ids are ignored, as AWS does.
      const instances = ids.length > 0 ? ids.flatMap((id) => model.instance(id) ?? []) : model.instances();
      const page = paginate(instances, input, 50, 50);
      return {
        AutoScalingInstances: page.items.map((i) => ({
          InstanceId: i.id,
          InstanceType: 't4g.micro',
          AutoScalingGroupName: i.groupName,
          AvailabilityZone: i.availabilityZone,
          LifecycleState: i.state,
          HealthStatus: 'HEALTHY',
          ProtectedFromScaleIn: false,
        })),
        NextToken: page.nextToken,
      };
    }
    case 'DescribeLifecycleHooks': {
      const group = model.group(input.required('AutoScalingGroupName'));
      const names = input.list('LifecycleHookNames');
      const hooks = [...group.hooks.values()].filter(
        (hook) => names.length === 0 || names.includes(hook.name),
      );
      return {
        LifecycleHooks: hooks.map((hook) => ({
          LifecycleHookName: hook.name,
          AutoScalingGroupName: group.name,
          LifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING',
          NotificationMetadata: hook.notificationMetadata,
          HeartbeatTimeout: hook.heartbeatTimeout,
          GlobalTimeout: hook.globalTimeout,
          DefaultResult: hook.defaultResult,
        })),
      };
    }
    case 'DescribeScalingActivities': {
      const ids = input.list('ActivityIds');
      atMost(ids, 'activityIds', 50);
      // An unknown group, like unknown activity ids, answers an empty list.
      const activities = model
        .activities(input.string('AutoScalingGroupName'))
        .filter((a) => ids.length === 0 || ids.includes(a.id));
      const page = paginate(activities, input, 100, 100);
      return {
        Activities: page.items.map((a) => activityXml(a, model.group(a.groupName))),
        NextToken: page.nextToken,
      };
    }
    case 'EnterStandby': {
      const ids = standbyIds(input);
      const decrement = input.required('ShouldDecrementDesiredCapacity');
      const activities = model.enterStandby(
        input.required('AutoScalingGroupName'),
        ids,
        decrement === 'true',
      );
      return { Activities: activities.map((a) => activityXml(a, model.group(a.groupName))) };
    }
    case 'ExitStandby': {
      const ids = standbyIds(input);
      const activities = model.exitStandby(input.required('AutoScalingGroupName'), ids);
      return { Activities: activities.map((a) => activityXml(a, model.group(a.groupName))) };
    }
    case 'PutWarmPool': {
      const minSize = input.int('MinSize');
      const maxGroupPreparedCapacity = input.int('MaxGroupPreparedCapacity');
      const poolState = input.string('PoolState');
      const reuse = input.string('InstanceReusePolicy.ReuseOnScaleIn');
      model.putWarmPool(input.required('AutoScalingGroupName'), {
        ...(minSize === undefined ? {} : { minSize }),
        ...(maxGroupPreparedCapacity === undefined ? {} : { maxGroupPreparedCapacity }),
        ...(poolState === undefined ? {} : { poolState: warmPoolState(poolState) }),
        ...(reuse === undefined ? {} : { reuseOnScaleIn: reuse === 'true' }),
      });
      return {};
    }
    case 'DescribeWarmPool': {
      const group = model.group(input.required('AutoScalingGroupName'));
      const pool = group.warmPool;
      const page = paginate([...(pool?.instances.values() ?? [])], input, 50, 50);
      return {
        WarmPoolConfiguration: pool && {
          MaxGroupPreparedCapacity: pool.maxGroupPreparedCapacity,
          MinSize: pool.minSize,
          PoolState: pool.poolState,
          InstanceReusePolicy: { ReuseOnScaleIn: pool.reuseOnScaleIn },
        },
        Instances: page.items.map(instanceXml),
        NextToken: page.nextToken,
      };
    }
    default:
      throw new ApiError('InvalidAction', `Could not find operation ${input.action} for version 2011-01-01`);
  }
}

/** The instances of an EnterStandby / ExitStandby call: at most 20, each once. */
function standbyIds(input: QueryInput): string[] {
  const ids = input.list('InstanceIds');
  atMost(ids, 'instanceIds', MAX_STANDBY_INSTANCES);
  return [...new Set(ids)];
}

function actionRef(input: QueryInput) {
  const token = input.string('LifecycleActionToken');
  const instanceId = input.string('InstanceId');
  return {
    groupName: input.required('AutoScalingGroupName'),
    hookName: input.required('LifecycleHookName'),
    ...(token ? { token } : {}),
    ...(instanceId ? { instanceId } : {}),
  };
}

function lifecycleResult(value: string): LifecycleResult {
  if (isLifecycleResult(value)) return value;
  throw new ApiError(
    'ValidationError',
    `Invalid DefaultResult: ${value}. Valid values are CONTINUE and ABANDON`,
  );
}

function warmPoolState(value: string): PoolState {
  if (value === 'Stopped' || value === 'Running' || value === 'Hibernated') return value;
  throw new ApiError(
    'ValidationError',
    `Invalid PoolState: ${value}. Valid values are Stopped, Running and Hibernated`,
  );
}

function activityXml(activity: Activity, group: Group): Xml {
  return {
    ActivityId: activity.id,
    AutoScalingGroupName: activity.groupName,
    AutoScalingGroupARN: group.arn,
    Description: activity.description,
    Cause: activity.cause,
    StartTime: new Date(activity.startedAt),
    EndTime: activity.endedAt === undefined ? undefined : new Date(activity.endedAt),
    StatusCode: activity.statusCode,
    StatusMessage: activity.statusMessage,
    Progress: activity.progress,
    Details: activity.details,
  };
}

function groupXml(group: Group): Xml {
  return {
    AutoScalingGroupName: group.name,
    AutoScalingGroupARN: group.arn,
    LaunchTemplate: { LaunchTemplateName: `${group.name}-template`, Version: '$Default' },
    MinSize: group.minSize,
    MaxSize: group.maxSize,
    DesiredCapacity: group.desiredCapacity,
    DefaultCooldown: 300,
    AvailabilityZones: [...new Set([...group.instances.values()].map((i) => i.availabilityZone))],
    HealthCheckType: 'EC2',
    HealthCheckGracePeriod: 300,
    Instances: [...group.instances.values()].map(instanceXml),
    CreatedTime: new Date(group.createdAt),
    Tags: Object.entries(group.tags).map(([Key, Value]) => ({
      ResourceId: group.name,
      ResourceType: 'auto-scaling-group',
      Key,
      Value,
      PropagateAtLaunch: true,
    })),
    NewInstancesProtectedFromScaleIn: false,
  };
}

function instanceXml(instance: Instance): Xml {
  return {
    InstanceId: instance.id,
    InstanceType: 't4g.micro',
    AvailabilityZone: instance.availabilityZone,
    LifecycleState: instance.state,
    HealthStatus: 'Healthy',
    ProtectedFromScaleIn: false,
  };
}

/** MaxRecords/NextToken paging; the token is the offset of the next page. */
function paginate<T>(items: readonly T[], input: QueryInput, defaultSize: number, maxSize: number) {
  const size = input.int('MaxRecords') ?? defaultSize;
  if (size < 1 || size > maxSize)
    throw new ApiError('ValidationError', `MaxRecords must be between 1 and ${maxSize}`);
  const offset = Number(input.string('NextToken') ?? '0');
  if (!Number.isInteger(offset) || offset < 0)
    throw new ApiError('InvalidNextToken', 'The NextToken value is not valid.');
  const end = offset + size;
  return { items: items.slice(offset, end), nextToken: end < items.length ? String(end) : undefined };
}

function lowerFirst(name: string): string {
  return name.charAt(0).toLowerCase() + name.slice(1);
}

/** AWS's answer to a list longer than the API takes. */
function atMost(values: readonly string[], member: string, max: number): void {
  if (values.length > max) {
    throw new ApiError(
      'ValidationError',
      `1 validation error detected: Value at '${member}' failed to satisfy constraint: Member must have length less than or equal to ${max}`,
    );
  }
}
