import {
  CompleteLifecycleActionCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeWarmPoolCommand,
  type Instance,
  RecordLifecycleActionHeartbeatCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  type Command,
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  ListCommandsCommand,
  SendCommandCommand,
} from '@aws-sdk/client-ssm';
import { route } from '../../functions/orchestrator/router';
import { autoScaling, awsError, fixture, harness, INSTANCE, NOW, ssm, TOKEN } from './support';

const OTHER = 'i-0fedcba0987654321';

function groups(web: Instance[], api: Instance[] = []) {
  autoScaling.on(DescribeAutoScalingGroupsCommand).resolves({
    AutoScalingGroups: [
      { AutoScalingGroupName: 'web', Instances: web } as never,
      { AutoScalingGroupName: 'api', Instances: api } as never,
    ],
  });
}

const waiting = (InstanceId: string, LifecycleState = 'Pending:Wait') =>
  ({ InstanceId, LifecycleState }) as Instance;

function command(status: string, overrides: Partial<Command> = {}): Command {
  return {
    CommandId: 'cccccccc-1111-2222-3333-444444444444',
    Status: status as never,
    Comment: 'selfdeploy launch AutoScalingGroup',
    RequestedDateTime: new Date(NOW - 120_000),
    TimeoutSeconds: 600,
    Parameters: {
      autoScalingGroupName: ['web'],
      lifecycleHookName: ['selfdeploy-launch'],
      lifecycleActionToken: [TOKEN],
    },
    ...overrides,
  };
}

describe('reconcile', () => {
  it('has nothing to do when no instance is waiting, and still reports zero stuck instances per group', async () => {
    const { deps, metrics } = harness();
    groups([{ InstanceId: INSTANCE, LifecycleState: 'InService' } as Instance]);

    const result = await route(deps, fixture('scheduled'));

    expect(result).toMatchObject({
      result: { groups: { web: { waiting: 0, stuck: 0 }, api: { waiting: 0 } } },
    });
    expect(ssm.calls()).toHaveLength(0);
    expect(autoScaling).toHaveReceivedCommandWith(DescribeAutoScalingGroupsCommand, {
      AutoScalingGroupNames: ['web', 'api'],
    });
    expect(metrics).toEqual([
      { name: 'StuckInstances', group: 'web', value: 0, unit: 'Count' },
      { name: 'StuckInstances', group: 'api', value: 0, unit: 'Count' },
    ]);
  });

  it('starts the deploy a lost launch event never started', async () => {
    const { deps } = harness();
    groups([waiting(INSTANCE)]);
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'dddddddd-1111-2222-3333-444444444444' } });

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
        lifecycleActionToken: [''],
      }),
    });
  });

  it('counts an instance whose agent has not registered as stuck, without waiting for it', async () => {
    const { deps, metrics, sleeps } = harness();
    groups([waiting(INSTANCE)]);
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    ssm.on(SendCommandCommand).rejects(awsError('InvalidInstanceId', 'not registered'));
    ssm.on(DescribeInstanceInformationCommand).resolves({ InstanceInformationList: [] });

    const result = await route(deps, fixture('scheduled'));

    expect(result).toMatchObject({ result: { groups: { web: { stuck: 1 } } } });
    expect(sleeps).toEqual([]);
    expect(metrics).toContainEqual({ name: 'StuckInstances', group: 'web', value: 1, unit: 'Count' });
  });

  it('completes an instance whose deploy finished but whose status event was lost', async () => {
    const { deps } = harness();
    groups([waiting(INSTANCE)]);
    ssm.on(ListCommandsCommand).resolves({ Commands: [command('Success')] });
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});

    const result = await route(deps, fixture('scheduled'));

    expect(result).toMatchObject({ result: { groups: { web: { instances: { [INSTANCE]: 'completed' } } } } });
    expect(autoScaling).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
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
    ssm.on(ListCommandsCommand).resolves({ Commands: [command('Failed')] });
    ssm.on(GetCommandInvocationCommand).resolves({ ResponseCode: 1 });
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});

    await route(deps, fixture('scheduled'));

    expect(autoScaling).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
      LifecycleActionResult: 'ABANDON',
    });
  });

  it('heartbeats an instance whose deploy is still running', async () => {
    const { deps } = harness();
    groups([waiting(INSTANCE)]);
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

  it('counts a deploy running past its timeouts as stuck and stops heartbeating it, so the hook timeout ends the wait', async () => {
    const { deps } = harness();
    groups([waiting(INSTANCE)]);
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
    ssm
      .on(ListCommandsCommand)
      .resolves({ Commands: [command('Success', { Comment: 'selfdeploy launch WarmPool' })] });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'dddddddd-1111-2222-3333-444444444444' } });

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
        { AutoScalingGroupName: 'web', Instances: [waiting(INSTANCE)], WarmPoolConfiguration: {} } as never,
        { AutoScalingGroupName: 'api', Instances: [waiting('i-0aaaaaaaaaaaaaaaa')] } as never,
      ],
    });
    // Warm-pool instances are listed by DescribeWarmPool only, never among the group's instances.
    autoScaling.on(DescribeWarmPoolCommand).resolves({
      Instances: [waiting(OTHER, 'Warmed:Pending:Wait'), waiting('i-0bbbbbbbbbbbbbbbb', 'Warmed:Stopped')],
    });
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'dddddddd-1111-2222-3333-444444444444' } });

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
