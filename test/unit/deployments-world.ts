// A small world for the deployment tests: Parameter Store, a group's instances and SSM's
// commands as the mocked clients answer them, with state that lasts across invocations.
import {
  type AutoScalingGroup,
  DescribeAutoScalingGroupsCommand,
  DescribeAutoScalingInstancesCommand,
  EnterStandbyCommand,
  ExitStandbyCommand,
  type LifecycleState,
} from '@aws-sdk/client-auto-scaling';
import { DescribeTagsCommand } from '@aws-sdk/client-ec2';
import {
  type CommandInvocationStatus,
  type CommandStatus,
  DeleteParametersCommand,
  GetCommandInvocationCommand,
  GetParameterCommand,
  GetParametersByPathCommand,
  ListCommandInvocationsCommand,
  ListCommandsCommand,
  ParameterAlreadyExists,
  ParameterNotFound,
  PutParameterCommand,
  SendCommandCommand,
} from '@aws-sdk/client-ssm';
import { advanceDeployment } from '../../functions/orchestrator/deployments';
import { forgetReleaseCache } from '../../functions/orchestrator/release-store';
import { route } from '../../functions/orchestrator/router';
import type { Deployment, OperatorAnswer } from '../../functions/shared/operator-actions';
import { RESULT_LINE_PREFIX } from '../../functions/shared/result-line';
import {
  agentStatuses,
  autoScaling,
  awsError,
  baseConfig,
  describedGroup,
  ec2,
  groupInstance,
  type Harness,
  harness,
  instanceId,
  ssm,
} from './support';

export const OLD_SHA = '1'.repeat(40);
export const NEW_SHA = '2'.repeat(40);

/** A command as the world's SSM keeps it. */
export interface SentCommand {
  readonly commandId: string;
  readonly instanceIds: string[];
  readonly parameters: Record<string, string[]>;
  readonly comment: string;
  readonly maxConcurrency?: string;
  readonly maxErrors?: string;
  readonly requestedAt: Date;
  status: CommandStatus;
  runs: Map<string, { status: CommandInvocationStatus; responseCode: number; stdout: string }>;
}

/** What the script prints last: its result line. */
export function resultLine(fields: Record<string, unknown>): string {
  return `deploying…\n${RESULT_LINE_PREFIX}${JSON.stringify(fields)}\n`;
}

export interface World extends Harness {
  /** Parameter Store: name → value and when it was last written. */
  readonly parameters: Map<string, { value: string; modified: Date }>;
  readonly commands: SentCommand[];
  /** The group's InService instances (web), changed by tests to model launches. */
  inService: string[];
  /** Instances whose agent is not online. */
  offline: Set<string>;
  /** Instances SendCommand refuses (InvalidInstanceId) though their agent is online: the role may not reach them. */
  readonly refused: Set<string>;
  /** Lifecycle states other than InService (Standby and the ways in and out of it), by instance. */
  readonly states: Map<string, LifecycleState>;
  /** Instances Auto Scaling holds Unhealthy. */
  readonly unhealthy: Set<string>;
  /** Fields of the group as DescribeAutoScalingGroups gives them beyond its sizes (target groups, grace period). */
  readonly group: Partial<AutoScalingGroup>;
  /** The group's sizes; the desired capacity follows EnterStandby and ExitStandby as AWS's does. */
  readonly sizes: { min: number; max: number; desired: number };
  /** Ends every standby transition under way: EnteringStandby → Standby, Pending → InService. */
  settle(): void;
  /** `selfdeploy:revision` tags. */
  tags: Map<string, string>;
  /** Web's record, as the deployment code reads it. */
  record(name: string): unknown;
  put(name: string, value: unknown, modified?: Date): void;
  /** Ends every run of a command: each instance's status, exit code and SHA (default: success at `sha`). */
  finish(
    commandId: string,
    sha: string,
    failing?: Record<string, { exitCode: number; reason: string }>,
  ): void;
  /** The commands whose Comment ends with this role. */
  sentFor(role: 'canary' | 'rest' | 'joiners' | 'restore'): SentCommand[];
  /** The command-level status event of a finished command. */
  statusEvent(command: SentCommand): Record<string, unknown>;
  /** Moves the clock on. */
  advance(ms: number): void;
}

/** A world with group web of `count` InService instances, all agents online, no record; web deploys `deployWith`. */
export function world(count: number, deployWith: 'in-place' | 'standby' = 'in-place'): World {
  const base = harness({
    config: {
      ...baseConfig,
      groups: { ...baseConfig.groups, web: { lifecycleHookName: 'selfdeploy-launch', deployWith } },
    },
  });
  forgetReleaseCache();
  let now = base.deps.clock.now();
  const clock = { ...base.deps.clock, now: () => now };
  const parameters = new Map<string, { value: string; modified: Date }>();
  const commands: SentCommand[] = [];
  const state: Pick<World, 'inService' | 'offline' | 'tags'> = {
    inService: Array.from({ length: count }, (_, index) => instanceId(index + 1)),
    offline: new Set(),
    tags: new Map(),
  };
  const states = new Map<string, LifecycleState>();
  const refused = new Set<string>();
  const unhealthy = new Set<string>();
  const group: Partial<AutoScalingGroup> = {};
  const sizes = { min: 0, max: 200, desired: count };
  const stateOf = (id: string): LifecycleState => states.get(id) ?? 'InService';
  /** AWS's answer to a standby call the group's sizes do not allow. */
  const sizesError = (change: string) =>
    awsError(
      'ValidationError',
      `AutoScalingGroup web has min-size=${sizes.min}, max-size=${sizes.max}, and desired-size=${sizes.desired}. To ${change}, please update the AutoScalingGroup sizes appropriately.`,
    );
  autoScaling.on(EnterStandbyCommand).callsFake(({ InstanceIds, ShouldDecrementDesiredCapacity }) => {
    const ids: string[] = InstanceIds ?? [];
    if (ids.length > 20 || ShouldDecrementDesiredCapacity !== true)
      throw awsError('ValidationError', 'bad call');
    for (const id of ids) {
      if (stateOf(id) !== 'InService')
        throw awsError('ValidationError', `The instance ${id} is not in InService.`);
    }
    if (sizes.desired - ids.length < sizes.min)
      throw sizesError(`place into standby ${ids.length} instance(s)`);
    sizes.desired -= ids.length;
    for (const id of ids) states.set(id, 'EnteringStandby');
    return { Activities: [] };
  });
  autoScaling.on(ExitStandbyCommand).callsFake(({ InstanceIds }) => {
    const ids: string[] = InstanceIds ?? [];
    if (ids.length > 20) throw awsError('ValidationError', 'bad call');
    for (const id of ids) {
      if (stateOf(id) !== 'Standby')
        throw awsError('ValidationError', `The instance ${id} is not in Standby.`);
    }
    if (sizes.desired + ids.length > sizes.max) throw sizesError(`exit standby ${ids.length} instance(s)`);
    sizes.desired += ids.length;
    for (const id of ids) states.set(id, 'Pending');
    return { Activities: [] };
  });

  ssm.on(GetParametersByPathCommand).callsFake(({ Path }) => ({
    Parameters: [...parameters]
      .filter(([name]) => name.startsWith(`${Path}/`) && !name.slice(Path.length + 1).includes('/'))
      .map(([Name, { value }]) => ({ Name, Value: value })),
  }));
  ssm.on(PutParameterCommand).callsFake(({ Name, Value, Overwrite }) => {
    if (parameters.has(Name) && !Overwrite) {
      throw new ParameterAlreadyExists({ message: 'The parameter already exists.', $metadata: {} });
    }
    parameters.set(Name, { value: Value, modified: new Date(now) });
    return { Version: 1 };
  });
  ssm.on(DeleteParametersCommand).callsFake(({ Names }) => {
    for (const name of Names) parameters.delete(name);
    return { DeletedParameters: Names };
  });
  ssm.on(GetParameterCommand).callsFake(({ Name }) => {
    const found = parameters.get(Name);
    if (!found) throw new ParameterNotFound({ message: 'not found', $metadata: {} });
    return { Parameter: { Name, Value: found.value, LastModifiedDate: found.modified } };
  });
  autoScaling.on(DescribeAutoScalingGroupsCommand).callsFake(() => ({
    AutoScalingGroups: [
      describedGroup(
        'web',
        state.inService.map((id) => ({
          ...groupInstance(id, stateOf(id)),
          HealthStatus: unhealthy.has(id) ? 'Unhealthy' : 'Healthy',
        })),
        { ...group, MinSize: sizes.min, MaxSize: sizes.max, DesiredCapacity: sizes.desired },
      ),
    ],
  }));
  autoScaling.on(DescribeAutoScalingInstancesCommand).callsFake(({ InstanceIds }) => ({
    AutoScalingInstances: (InstanceIds ?? [])
      .filter((id: string) => state.inService.includes(id))
      .map((InstanceId: string) => ({
        InstanceId,
        AutoScalingGroupName: 'web',
        LifecycleState: 'InService',
        AvailabilityZone: 'us-west-2a',
        HealthStatus: 'HEALTHY',
        ProtectedFromScaleIn: false,
      })),
  }));
  agentStatuses((id) => (state.offline.has(id) ? 'ConnectionLost' : 'Online'));
  ec2.on(DescribeTagsCommand).callsFake(({ Filters }) => ({
    Tags: (Filters?.[0]?.Values ?? []).flatMap((id: string) => {
      const value = state.tags.get(id);
      return value
        ? [{ ResourceId: id, ResourceType: 'instance', Key: 'selfdeploy:revision', Value: value }]
        : [];
    }),
  }));
  ssm.on(SendCommandCommand).callsFake((input) => {
    if (input.InstanceIds.some((id: string) => refused.has(id))) {
      throw awsError('InvalidInstanceId', 'Instances not in a valid state for account');
    }
    const command: SentCommand = {
      commandId: `cccccccc-0000-4000-8000-${String(commands.length + 1).padStart(12, '0')}`,
      instanceIds: [...input.InstanceIds],
      parameters: input.Parameters,
      comment: input.Comment,
      ...(input.MaxConcurrency && { maxConcurrency: input.MaxConcurrency }),
      ...(input.MaxErrors && { maxErrors: input.MaxErrors }),
      requestedAt: new Date(now),
      status: 'InProgress',
      runs: new Map(),
    };
    commands.push(command);
    return { Command: { CommandId: command.commandId } };
  });
  const listed = (command: SentCommand) => ({
    CommandId: command.commandId,
    InstanceIds: command.instanceIds,
    Comment: command.comment,
    Parameters: command.parameters,
    Status: command.status,
    RequestedDateTime: command.requestedAt,
  });
  // By id, by instance or the whole history; InvokedAfter and InvokedBefore honoured; newest first, 50 a page, as SSM's.
  ssm.on(ListCommandsCommand).callsFake(({ CommandId, InstanceId, Filters, MaxResults, NextToken }) => {
    const after = Filters?.find((filter: { key: string }) => filter.key === 'InvokedAfter')?.value;
    const before = Filters?.find((filter: { key: string }) => filter.key === 'InvokedBefore')?.value;
    const matching = commands
      .filter((command) =>
        CommandId
          ? command.commandId === CommandId
          : InstanceId === undefined || command.instanceIds.includes(InstanceId),
      )
      .filter((command) => after === undefined || command.requestedAt.getTime() >= Date.parse(after))
      .filter((command) => before === undefined || command.requestedAt.getTime() <= Date.parse(before))
      .reverse();
    const start = Number(NextToken ?? 0);
    const end = start + (MaxResults ?? 50);
    return {
      Commands: matching.slice(start, end).map(listed),
      ...(end < matching.length && { NextToken: String(end) }),
    };
  });
  ssm.on(ListCommandInvocationsCommand).callsFake(({ CommandId, InstanceId }) => ({
    CommandInvocations: commands
      .filter((command) =>
        CommandId ? command.commandId === CommandId : command.instanceIds.includes(InstanceId),
      )
      .flatMap((command) =>
        command.instanceIds
          .filter((id) => !InstanceId || id === InstanceId)
          .map((id) => ({
            CommandId: command.commandId,
            InstanceId: id,
            Status: command.runs.get(id)?.status ?? 'InProgress',
            RequestedDateTime: command.requestedAt,
            CommandPlugins: [{ Name: 'deploy', ResponseCode: command.runs.get(id)?.responseCode ?? -1 }],
          })),
      ),
  }));
  ssm.on(GetCommandInvocationCommand).callsFake(({ CommandId, InstanceId }) => {
    const run = commands.find((command) => command.commandId === CommandId)?.runs.get(InstanceId);
    return {
      CommandId,
      InstanceId,
      Status: run?.status ?? 'InProgress',
      ResponseCode: run?.responseCode ?? -1,
      StandardOutputContent: run?.stdout ?? '',
      StandardErrorContent: run && run.responseCode !== 0 ? 'cap aborted!\n' : '',
    };
  });

  const deps = { ...base.deps, clock };
  return {
    ...base,
    deps,
    parameters,
    commands,
    states,
    refused,
    unhealthy,
    group,
    sizes,
    settle: () => {
      for (const [id, lifecycle] of states) {
        if (lifecycle === 'EnteringStandby') states.set(id, 'Standby');
        if (lifecycle === 'Pending') states.delete(id);
      }
    },
    get inService() {
      return state.inService;
    },
    set inService(ids) {
      state.inService = ids;
    },
    get offline() {
      return state.offline;
    },
    set offline(ids) {
      state.offline = ids;
    },
    get tags() {
      return state.tags;
    },
    set tags(tags) {
      state.tags = tags;
    },
    record: (name) => {
      const found = parameters.get(`/selfdeploy/web/${name}`);
      return found && JSON.parse(found.value);
    },
    put: (name, value, modified = new Date(now)) => {
      parameters.set(`/selfdeploy/web/${name}`, { value: JSON.stringify(value), modified });
    },
    finish(commandId, sha, failing = {}) {
      const command = commands.find((candidate) => candidate.commandId === commandId);
      if (!command) throw new Error(`no command ${commandId}`);
      for (const id of command.instanceIds) {
        const failed = failing[id];
        command.runs.set(id, {
          status: failed ? 'Failed' : 'Success',
          responseCode: failed ? failed.exitCode : 0,
          stdout: resultLine({
            status: failed ? 'failure' : 'success',
            exitCode: failed ? failed.exitCode : 0,
            revision: sha,
            ...(failed && { reason: failed.reason }),
          }),
        });
      }
      command.status = Object.keys(failing).some((id) => command.instanceIds.includes(id))
        ? 'Failed'
        : 'Success';
    },
    sentFor: (role) => commands.filter((command) => command.comment.endsWith(` ${role}`)),
    statusEvent: (command) => ({
      version: '0',
      id: 'status-event',
      'detail-type': 'EC2 Command Status-change Notification',
      source: 'aws.ssm',
      account: '123456789012',
      time: new Date(now).toISOString(),
      region: 'us-west-2',
      resources: command.instanceIds.map((id) => `arn:aws:ec2:us-west-2:123456789012:instance/${id}`),
      detail: {
        'command-id': command.commandId,
        'document-name': 'SelfDeploy',
        parameters: command.parameters,
        'requested-date-time': command.requestedAt.toISOString(),
        status: command.status,
      },
    }),
    advance: (ms) => {
      now += ms;
    },
  };
}

/** A release record of `sha`. */
export const release = (sha: string) => ({
  sha,
  changedAt: '2026-11-26T09:00:00.000Z',
  reason: 'first deploy',
});

/** Runs an operator action as the Lambda console's Test button does; its answer. */
export async function operate(w: World, action: Record<string, unknown>): Promise<OperatorAnswer> {
  const routed = await route(w.deps, action);
  if (routed.kind !== 'operator') throw new Error(`routed as ${routed.kind}`);
  return routed.result;
}

/** A standby group web of `count` instances with MinSize `min`, release OLD_SHA, a deploy of v2 started. */
export async function standbyDeployStarted(count: number, min = 0) {
  const w = world(count, 'standby');
  w.sizes.min = min;
  w.put('release', release(OLD_SHA));
  const answer = (await operate(w, { action: 'deploy', group: 'web', revision: 'v2' })) as {
    deploymentId: string;
    canary: string;
  };
  return { w, answer };
}

/** The group's deployment in flight, as recorded. */
export const deployment = (w: World) => w.record('deployment') as Deployment | undefined;
/** The group's last ended deployment, as recorded. */
export const lastDeployment = (w: World) => w.record('last-deployment') as Deployment | undefined;
/** The EnterStandby requests sent so far, in order. */
export const enteredStandby = () =>
  autoScaling.commandCalls(EnterStandbyCommand).map((call) => call.args[0].input);
/** The ExitStandby requests sent so far, in order. */
export const exitedStandby = () =>
  autoScaling.commandCalls(ExitStandbyCommand).map((call) => call.args[0].input);
/** Advances group web's deployment as a status event or reconcile would. */
export const advance = (w: World) => advanceDeployment(w.deps, 'web');
