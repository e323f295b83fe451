import {
  CompleteLifecycleActionCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeLifecycleHooksCommand,
  DescribeScalingActivitiesCommand,
  DescribeWarmPoolCommand,
  type Instance,
  type LifecycleState,
  RecordLifecycleActionHeartbeatCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  type Command,
  type CommandStatus,
  GetCommandInvocationCommand,
  GetParametersByPathCommand,
  ListCommandsCommand,
  SendCommandCommand,
} from '@aws-sdk/client-ssm';
import { route } from '../../functions/orchestrator/router';
import { ReconcileError } from '../../functions/shared/errors';
import {
  activities,
  agentsOnline,
  autoScaling,
  awsError,
  baseConfig,
  describedGroup,
  fixture,
  groupInstance,
  harness,
  INSTANCE,
  launchActivity,
  NOW,
  OTHER,
  ssm,
  TOKEN,
} from './support';

const NEW_COMMAND = 'dddddddd-1111-2222-3333-444444444444';
/** A configuration whose queue watches a wait for 30 s only, so the reconciler looks at younger ones. */
const QUICK = { ...baseConfig, agentWaitSeconds: 30 };
/** The instances' current waits began ten minutes ago. */
const WAIT_BEGAN = new Date(NOW - 600_000);

function groups(web: Instance[], api: Instance[] = []) {
  autoScaling.on(DescribeAutoScalingGroupsCommand).resolves({
    AutoScalingGroups: [describedGroup('web', web), describedGroup('api', api)],
  });
}

const waiting = (instanceId: string, state: LifecycleState = 'Pending:Wait') =>
  groupInstance(instanceId, state);

/** The web hook, with the NotificationMetadata a launch event would carry. */
function hookMetadata(NotificationMetadata?: string) {
  autoScaling.on(DescribeLifecycleHooksCommand).resolves({
    LifecycleHooks: [
      {
        AutoScalingGroupName: 'web',
        LifecycleHookName: 'selfdeploy-launch',
        LifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING',
        ...(NotificationMetadata !== undefined && { NotificationMetadata }),
      },
    ],
  });
}

function command(status: CommandStatus, overrides: Partial<Command> = {}, instanceId = INSTANCE): Command {
  return {
    CommandId: 'cccccccc-1111-2222-3333-444444444444',
    Status: status,
    Comment: 'selfdeploy launch AutoScalingGroup',
    RequestedDateTime: new Date(NOW - 120_000),
    TimeoutSeconds: 600,
    Parameters: {
      autoScalingGroupName: ['web'],
      lifecycleHookName: ['selfdeploy-launch'],
      instanceId: [instanceId],
      lifecycleActionToken: [TOKEN],
    },
    ...overrides,
  };
}

describe('reconcile', () => {
  it('has nothing to do when no instance is waiting, and still reports zero stuck instances per group', async () => {
    const { deps, metrics } = harness();
    groups([groupInstance(INSTANCE, 'InService')]);

    const result = await route(deps, fixture('scheduled'));

    expect(result).toMatchObject({
      result: { groups: { web: { waiting: 0, stuck: 0 }, api: { waiting: 0 } } },
    });
    // One read of each group's release record; a group without a release needs nothing else.
    expect(ssm.calls().map((call) => call.args[0].constructor.name)).toEqual([
      'GetParametersByPathCommand',
      'GetParametersByPathCommand',
    ]);
    expect(autoScaling.calls()).toHaveLength(1);
    expect(autoScaling).toHaveReceivedCommandWith(DescribeAutoScalingGroupsCommand, {
      AutoScalingGroupNames: ['web', 'api'],
    });
    expect(metrics).toEqual([
      { name: 'StuckInstances', group: 'web', value: 0, unit: 'Count' },
      { name: 'StuckInstances', group: 'api', value: 0, unit: 'Count' },
    ]);
  });

  it('starts the deploy a lost launch event never started, naming the instance it is for', async () => {
    const { deps } = harness();
    groups([waiting(INSTANCE)]);
    hookMetadata();
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: NEW_COMMAND } });

    const result = await route(deps, { action: 'reconcile' });

    expect(result).toMatchObject({
      result: { groups: { web: { instances: { [INSTANCE]: 'deploy-started' } } } },
    });
    expect(ssm).toHaveReceivedCommandWith(SendCommandCommand, {
      InstanceIds: [INSTANCE],
      Comment: 'selfdeploy reconcile AutoScalingGroup',
      Parameters: expect.objectContaining({
        autoScalingGroupName: ['web'],
        lifecycleHookName: ['selfdeploy-launch'],
        instanceId: [INSTANCE],
        lifecycleActionToken: [''],
        migrate: ['false'],
      }),
    });
    // The activities are read once, to date the wait: no launch on record counts as old.
    expect(autoScaling).toHaveReceivedCommandTimes(DescribeScalingActivitiesCommand, 1);
  });

  it('counts an instance whose agent has not registered as stuck, without waiting for it', async () => {
    const { deps, metrics, sleeps } = harness();
    groups([waiting(INSTANCE)]);
    hookMetadata();
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    ssm.on(SendCommandCommand).rejects(awsError('InvalidInstanceId', 'not registered'));
    agentsOnline();

    const result = await route(deps, fixture('scheduled'));

    expect(result).toMatchObject({
      result: { groups: { web: { stuck: 1, instances: { [INSTANCE]: 'agent-not-ready' } } } },
    });
    expect(sleeps).toEqual([]);
    expect(metrics).toContainEqual({ name: 'StuckInstances', group: 'web', value: 1, unit: 'Count' });
  });

  it('completes an instance whose deploy finished but whose status event was lost, by instance id', async () => {
    const { deps } = harness();
    groups([waiting(INSTANCE)]);
    activities(launchActivity(INSTANCE, WAIT_BEGAN));
    ssm.on(ListCommandsCommand).resolves({ Commands: [command('Success')] });
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});

    const result = await route(deps, fixture('scheduled'));

    expect(result).toMatchObject({ result: { groups: { web: { instances: { [INSTANCE]: 'completed' } } } } });
    expect(autoScaling).toHaveReceivedCommandTimes(CompleteLifecycleActionCommand, 1);
    expect(autoScaling.commandCalls(CompleteLifecycleActionCommand)[0]?.args[0].input).toEqual({
      AutoScalingGroupName: 'web',
      LifecycleHookName: 'selfdeploy-launch',
      InstanceId: INSTANCE,
      LifecycleActionResult: 'CONTINUE',
    });
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
  });

  it('abandons an instance whose lost status event was a failure', async () => {
    const { deps } = harness();
    groups([waiting(INSTANCE)]);
    activities(launchActivity(INSTANCE, WAIT_BEGAN));
    ssm.on(ListCommandsCommand).resolves({ Commands: [command('Failed')] });
    ssm.on(GetCommandInvocationCommand).resolves({ ResponseCode: 1 });
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});

    await route(deps, fixture('scheduled'));

    expect(autoScaling).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
      InstanceId: INSTANCE,
      LifecycleActionResult: 'ABANDON',
    });
  });

  it('heartbeats an instance whose deploy is still running', async () => {
    const { deps } = harness();
    groups([waiting(INSTANCE)]);
    activities(launchActivity(INSTANCE, WAIT_BEGAN));
    ssm.on(ListCommandsCommand).resolves({ Commands: [command('InProgress')] });
    autoScaling.on(RecordLifecycleActionHeartbeatCommand).resolves({});

    const result = await route(deps, fixture('scheduled'));

    expect(result).toMatchObject({
      result: { groups: { web: { stuck: 0, instances: { [INSTANCE]: 'heartbeat' } } } },
    });
    expect(autoScaling).toHaveReceivedCommandWith(RecordLifecycleActionHeartbeatCommand, {
      AutoScalingGroupName: 'web',
      LifecycleHookName: 'selfdeploy-launch',
      InstanceId: INSTANCE,
    });
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(autoScaling).not.toHaveReceivedCommand(CompleteLifecycleActionCommand);
  });

  it('heartbeats the run that holds the wait when a later duplicate ended without a verdict', async () => {
    const { deps } = harness();
    groups([waiting(INSTANCE)]);
    activities(launchActivity(INSTANCE, WAIT_BEGAN));
    ssm.on(ListCommandsCommand).resolves({
      Commands: [
        command('Failed', {
          CommandId: 'eeeeeeee-1111-2222-3333-444444444444',
          RequestedDateTime: new Date(NOW - 60_000),
        }),
        command('InProgress'),
      ],
    });
    ssm.on(GetCommandInvocationCommand).resolves({ ResponseCode: 13 });
    autoScaling.on(RecordLifecycleActionHeartbeatCommand).resolves({});

    const result = await route(deps, fixture('scheduled'));

    expect(result).toMatchObject({ result: { groups: { web: { instances: { [INSTANCE]: 'heartbeat' } } } } });
    expect(autoScaling).not.toHaveReceivedCommand(CompleteLifecycleActionCommand);
  });

  it('counts a deploy running past its timeouts as stuck and stops heartbeating it, so the hook timeout ends the wait', async () => {
    const { deps } = harness();
    groups([waiting(INSTANCE)]);
    activities(launchActivity(INSTANCE, new Date(NOW - 4 * 3600_000)));
    ssm.on(ListCommandsCommand).resolves({
      Commands: [command('InProgress', { RequestedDateTime: new Date(NOW - 3 * 3600_000) })],
    });

    const result = await route(deps, fixture('scheduled'));

    expect(result).toMatchObject({
      result: { groups: { web: { stuck: 1, instances: { [INSTANCE]: 'deploy-overdue' } } } },
    });
    expect(autoScaling).not.toHaveReceivedCommand(RecordLifecycleActionHeartbeatCommand);
  });

  it('deploys an instance entering service even when its warm-pool deploy finished long ago', async () => {
    const { deps } = harness();
    groups([waiting(INSTANCE)]);
    hookMetadata();
    ssm
      .on(ListCommandsCommand)
      .resolves({ Commands: [command('Success', { Comment: 'selfdeploy launch WarmPool' })] });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: NEW_COMMAND } });

    await route(deps, fixture('scheduled'));

    expect(ssm).toHaveReceivedCommandWith(SendCommandCommand, {
      Comment: 'selfdeploy reconcile AutoScalingGroup',
    });
    expect(autoScaling).not.toHaveReceivedCommand(CompleteLifecycleActionCommand);
  });

  it('handles each waiting instance of each group, warm pools included', async () => {
    const { deps } = harness();
    autoScaling.on(DescribeAutoScalingGroupsCommand).resolves({
      AutoScalingGroups: [
        describedGroup('web', [waiting(INSTANCE)], { WarmPoolConfiguration: {} }),
        describedGroup('api', [waiting('i-0aaaaaaaaaaaaaaaa')]),
      ],
    });
    // Warm-pool instances are listed by DescribeWarmPool only, never among the group's instances.
    autoScaling.on(DescribeWarmPoolCommand).resolves({
      Instances: [waiting(OTHER, 'Warmed:Pending:Wait'), waiting('i-0bbbbbbbbbbbbbbbb', 'Warmed:Stopped')],
    });
    autoScaling.on(DescribeLifecycleHooksCommand).resolves({ LifecycleHooks: [{}] });
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: NEW_COMMAND } });

    const result = await route(deps, fixture('scheduled'));

    expect(ssm).toHaveReceivedCommandTimes(SendCommandCommand, 3);
    expect(ssm).toHaveReceivedCommandWith(SendCommandCommand, {
      InstanceIds: [OTHER],
      Comment: 'selfdeploy reconcile WarmPool',
    });
    expect(result).toMatchObject({ result: { groups: { web: { waiting: 2 }, api: { waiting: 1 } } } });
    // Only the group that has a warm pool is asked about it.
    expect(autoScaling).toHaveReceivedCommandTimes(DescribeWarmPoolCommand, 1);
    expect(autoScaling).toHaveReceivedCommandWith(DescribeWarmPoolCommand, { AutoScalingGroupName: 'web' });
  });
});

describe('reconcile leaves young waits to the queue', () => {
  it('does not look at a wait younger than the agent wait: the queue still watches it and its status event comes that way', async () => {
    const { deps, metrics } = harness();
    groups([waiting(INSTANCE)]);
    activities(launchActivity(INSTANCE, new Date(NOW - 60_000)));
    ssm.on(ListCommandsCommand).resolves({ Commands: [command('Success')] });

    const result = await route(deps, fixture('scheduled'));

    expect(result).toMatchObject({
      result: { groups: { web: { waiting: 1, stuck: 0, instances: { [INSTANCE]: 'left-to-queue' } } } },
    });
    // Nothing about the wait: the only SSM reads are of the groups' release records.
    expect(ssm.calls().filter((call) => !(call.args[0] instanceof GetParametersByPathCommand))).toHaveLength(
      0,
    );
    expect(autoScaling).not.toHaveReceivedCommand(CompleteLifecycleActionCommand);
    expect(metrics).toContainEqual({ name: 'StuckInstances', group: 'web', value: 0, unit: 'Count' });
  });

  it('repairs the same wait once it is as old as the agent wait (a lost status event)', async () => {
    const { deps } = harness();
    groups([waiting(INSTANCE)]);
    activities(launchActivity(INSTANCE, new Date(NOW - 600_000)));
    ssm.on(ListCommandsCommand).resolves({ Commands: [command('Success')] });
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});

    const result = await route(deps, fixture('scheduled'));

    expect(result).toMatchObject({
      result: { groups: { web: { instances: { [INSTANCE]: 'completed' } } } },
    });
    expect(autoScaling).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
      LifecycleActionResult: 'CONTINUE',
    });
  });

  it("looks earlier when half the hook's heartbeat timeout is shorter than the agent wait, so a running deploy is heartbeaten in time", async () => {
    const { deps } = harness();
    // api's hook times out after 60 s: its waits are looked at from 30 s on.
    groups([], [waiting(INSTANCE)]);
    activities({ ...launchActivity(INSTANCE, new Date(NOW - 45_000)), AutoScalingGroupName: 'api' });
    ssm.on(ListCommandsCommand).resolves({
      Commands: [
        command('InProgress', {
          RequestedDateTime: new Date(NOW - 40_000),
          Parameters: {
            autoScalingGroupName: ['api'],
            lifecycleHookName: ['api-launch'],
            instanceId: [INSTANCE],
            lifecycleActionToken: [TOKEN],
          },
        }),
      ],
    });
    autoScaling.on(RecordLifecycleActionHeartbeatCommand).resolves({});

    const result = await route(deps, fixture('scheduled'));

    expect(result).toMatchObject({
      result: { groups: { api: { instances: { [INSTANCE]: 'heartbeat' } } } },
    });
  });
});

describe('reconcile trusts only commands sent during the current wait', () => {
  it('deploys again, rather than completing, when the only Success is from an earlier wait (warm-pool reuse)', async () => {
    const { deps } = harness({ config: QUICK });
    groups([waiting(INSTANCE)]);
    hookMetadata();
    // The instance left the warm pool five minutes ago; its Success is two hours old.
    activities(
      launchActivity(INSTANCE, new Date(NOW - 300_000), 'from warm pool'),
      launchActivity(INSTANCE, new Date(NOW - 3 * 3600_000), 'into warm pool'),
    );
    ssm.on(ListCommandsCommand).resolves({
      Commands: [command('Success', { RequestedDateTime: new Date(NOW - 2 * 3600_000) })],
    });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: NEW_COMMAND } });

    const result = await route(deps, fixture('scheduled'));

    expect(result).toMatchObject({
      result: { groups: { web: { instances: { [INSTANCE]: 'deploy-started' } } } },
    });
    expect(autoScaling).not.toHaveReceivedCommand(CompleteLifecycleActionCommand);
    expect(ssm).toHaveReceivedCommandWith(SendCommandCommand, {
      InstanceIds: [INSTANCE],
      Comment: 'selfdeploy reconcile AutoScalingGroup',
    });
  });

  it("does not trust an instance's commands when its launch is not among the group's activities", async () => {
    const { deps, logs } = harness();
    groups([waiting(INSTANCE)]);
    hookMetadata();
    activities(launchActivity(OTHER, new Date(NOW - 60_000)));
    ssm.on(ListCommandsCommand).resolves({ Commands: [command('Success')] });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: NEW_COMMAND } });

    await route(deps, fixture('scheduled'));

    expect(autoScaling).not.toHaveReceivedCommand(CompleteLifecycleActionCommand);
    expect(ssm).toHaveReceivedCommandTimes(SendCommandCommand, 1);
    expect(logs.warn).toHaveBeenCalledWith(
      expect.stringContaining('no launch activity of the instance'),
      expect.objectContaining({ instanceId: INSTANCE }),
    );
  });

  it("reads each group's activities once per run, page by page only until every waiting instance's launch is found", async () => {
    const { deps } = harness({ config: QUICK });
    const third = 'i-0aaaaaaaaaaaaaaaa';
    groups([waiting(INSTANCE), waiting(OTHER), waiting(third)]);
    autoScaling
      .on(DescribeScalingActivitiesCommand)
      .resolvesOnce({
        Activities: [
          launchActivity(INSTANCE, new Date(NOW - 60_000)),
          launchActivity(OTHER, new Date(NOW - 90_000)),
        ],
        NextToken: 'page-2',
      })
      .resolvesOnce({ Activities: [launchActivity(third, WAIT_BEGAN)], NextToken: 'page-3' })
      .resolves({ Activities: [] });
    ssm
      .on(ListCommandsCommand)
      .resolves({ Commands: [] })
      .on(ListCommandsCommand, { InstanceId: INSTANCE })
      .resolves({ Commands: [command('InProgress', { RequestedDateTime: new Date(NOW - 30_000) })] })
      .on(ListCommandsCommand, { InstanceId: OTHER })
      .resolves({ Commands: [command('InProgress', { RequestedDateTime: new Date(NOW - 30_000) }, OTHER)] })
      .on(ListCommandsCommand, { InstanceId: third })
      .resolves({ Commands: [command('InProgress', { RequestedDateTime: new Date(NOW - 30_000) }, third)] });
    autoScaling.on(RecordLifecycleActionHeartbeatCommand).resolves({});

    const result = await route(deps, fixture('scheduled'));

    expect(result).toMatchObject({
      result: {
        groups: {
          web: { instances: { [INSTANCE]: 'heartbeat', [OTHER]: 'heartbeat', [third]: 'heartbeat' } },
        },
      },
    });
    expect(autoScaling).toHaveReceivedCommandTimes(DescribeScalingActivitiesCommand, 2);
    expect(autoScaling.commandCalls(DescribeScalingActivitiesCommand)[1]?.args[0].input).toEqual({
      AutoScalingGroupName: 'web',
      MaxRecords: 100,
      NextToken: 'page-2',
    });
  });

  it("bounds the pages of a group's activities it reads, and then trusts no command it could not date", async () => {
    const { deps } = harness();
    groups([waiting(INSTANCE)]);
    hookMetadata();
    autoScaling
      .on(DescribeScalingActivitiesCommand)
      .resolves({ Activities: [launchActivity(OTHER, new Date(NOW - 60_000))], NextToken: 'more' });
    ssm.on(ListCommandsCommand).resolves({ Commands: [command('Success')] });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: NEW_COMMAND } });

    await route(deps, fixture('scheduled'));

    expect(autoScaling).toHaveReceivedCommandTimes(DescribeScalingActivitiesCommand, 20);
    expect(autoScaling).not.toHaveReceivedCommand(CompleteLifecycleActionCommand);
    expect(ssm).toHaveReceivedCommandTimes(SendCommandCommand, 1);
  });
});

describe('reconcile handles each instance on its own', () => {
  it('handles the other 14 of 15 waiting instances when one is denied, publishes StuckInstances, then fails naming it', async () => {
    const { deps, metrics, logs } = harness();
    const ids = Array.from({ length: 15 }, (_, i) => `i-0${String(i).padStart(16, '0')}`);
    const denied = ids[7] as string;
    groups(ids.map((id) => waiting(id)));
    hookMetadata();
    ssm
      .on(ListCommandsCommand)
      .resolves({ Commands: [] })
      .on(ListCommandsCommand, { InstanceId: denied })
      .rejects(awsError('AccessDeniedException', 'User is not authorized to perform: ssm:ListCommands'));
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: NEW_COMMAND } });

    const run = route(deps, fixture('scheduled'));

    await expect(run).rejects.toThrow(ReconcileError);
    await expect(run).rejects.toThrow(
      `reconcile could not handle ${denied} (web: AccessDeniedException: User is not authorized to perform: ssm:ListCommands)`,
    );
    expect(ssm).toHaveReceivedCommandTimes(SendCommandCommand, 14);
    for (const id of ids.filter((id) => id !== denied)) {
      expect(ssm).toHaveReceivedCommandWith(SendCommandCommand, { InstanceIds: [id] });
    }
    expect(metrics).toContainEqual({ name: 'StuckInstances', group: 'web', value: 1, unit: 'Count' });
    expect(metrics).toContainEqual({ name: 'StuckInstances', group: 'api', value: 0, unit: 'Count' });
    expect(logs.error).toHaveBeenCalledWith('reconcile could not handle a waiting instance', {
      instanceId: denied,
      group: 'web',
      state: 'Pending:Wait',
      errorName: 'AccessDeniedException',
      errorMessage: 'User is not authorized to perform: ssm:ListCommands',
    });
  });

  it('looks past groups it does not manage, whatever their names', async () => {
    const { deps } = harness();
    autoScaling.on(DescribeAutoScalingGroupsCommand).resolves({
      AutoScalingGroups: [
        describedGroup('constructor', [waiting(OTHER)]),
        describedGroup('__proto__', [waiting(OTHER)]),
        describedGroup('toString', [waiting(OTHER)]),
      ],
    });

    const result = await route(deps, fixture('scheduled'));

    expect(ssm.calls().map((call) => call.args[0].constructor.name)).toEqual([
      'GetParametersByPathCommand',
      'GetParametersByPathCommand',
    ]);
    expect(autoScaling.calls()).toHaveLength(1);
    expect(result).toMatchObject({ result: { groups: { web: { waiting: 0 }, api: { waiting: 0 } } } });
  });

  it('counts an instance SendCommand refuses while its agent is online as stuck, naming the tag condition', async () => {
    const { deps, logs } = harness();
    groups([waiting(INSTANCE)]);
    hookMetadata();
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    ssm.on(SendCommandCommand).rejects(awsError('InvalidInstanceId', 'Instances not in a valid state'));
    agentsOnline(INSTANCE);

    const result = await route(deps, fixture('scheduled'));

    expect(result).toMatchObject({
      result: { groups: { web: { stuck: 1, instances: { [INSTANCE]: 'send-refused' } } } },
    });
    expect(logs.error).toHaveBeenCalledWith(
      expect.stringContaining('ssm:resourceTag/aws:autoscaling:groupName'),
      expect.objectContaining({
        instanceId: INSTANCE,
        condition: 'ssm:resourceTag/aws:autoscaling:groupName',
      }),
    );
  });
});

describe('reconcile applies the launch metadata rules to a lost launch event', () => {
  it("deploys with the hook's NotificationMetadata overrides, reading the hook once per group", async () => {
    const { deps } = harness();
    groups([waiting(INSTANCE), waiting(OTHER)]);
    hookMetadata('{"revision":"v2.3.1","environment":"staging"}');
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: NEW_COMMAND } });

    await route(deps, fixture('scheduled'));

    expect(autoScaling).toHaveReceivedCommandTimes(DescribeLifecycleHooksCommand, 1);
    expect(autoScaling).toHaveReceivedCommandWith(DescribeLifecycleHooksCommand, {
      AutoScalingGroupName: 'web',
      LifecycleHookNames: ['selfdeploy-launch'],
    });
    for (const id of [INSTANCE, OTHER]) {
      expect(ssm).toHaveReceivedCommandWith(SendCommandCommand, {
        InstanceIds: [id],
        Parameters: expect.objectContaining({
          revision: ['v2.3.1'],
          environment: ['staging'],
          instanceId: [id],
        }),
      });
    }
  });

  it('abandons, as the launch does, when the metadata overrides are invalid', async () => {
    const { deps, metrics } = harness();
    groups([waiting(INSTANCE)]);
    hookMetadata('{"revision":"$(reboot)"}');
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: NEW_COMMAND } });
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});

    const result = await route(deps, fixture('scheduled'));

    expect(result).toMatchObject({ result: { groups: { web: { instances: { [INSTANCE]: 'abandoned' } } } } });
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(autoScaling).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
      AutoScalingGroupName: 'web',
      LifecycleHookName: 'selfdeploy-launch',
      InstanceId: INSTANCE,
      LifecycleActionResult: 'ABANDON',
    });
    expect(metrics).toContainEqual({ name: 'BootstrapFailed', group: 'web', value: 1, unit: 'Count' });
  });
});
