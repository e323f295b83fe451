import {
  AutoScalingClient,
  CompleteLifecycleActionCommand,
  CreateAutoScalingGroupCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeAutoScalingInstancesCommand,
  DescribeLifecycleHooksCommand,
  DescribeScalingActivitiesCommand,
  DescribeWarmPoolCommand,
  PutLifecycleHookCommand,
  PutWarmPoolCommand,
  RecordLifecycleActionHeartbeatCommand,
  SetDesiredCapacityCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  CreateTagsCommand,
  DescribeInstancesCommand,
  DescribeTagsCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  GetParameterCommand,
  ListCommandInvocationsCommand,
  ListCommandsCommand,
  PutParameterCommand,
  SendCommandCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import {
  COMMAND_STATUS_DETAIL_TYPE,
  commandStatusPattern,
  LAUNCH_DETAIL_TYPE,
  launchLifecyclePattern,
} from '../../functions/shared/event-patterns';
import type { Instance } from '../../scripts/local/control-plane/auto-scaling';
import {
  ControlPlane,
  type ControlPlaneOptions,
  type Machine,
} from '../../scripts/local/control-plane/control-plane';
import type { AwsEvent } from '../../scripts/local/control-plane/event-bus';

jest.setTimeout(20_000);

const DOCUMENT = JSON.stringify({
  schemaVersion: '2.2',
  description: 'test',
  parameters: {
    revision: { type: 'String', default: '', allowedPattern: '^$|^[a-z0-9]+$' },
    lifecycleActionToken: { type: 'String', default: '' },
  },
  mainSteps: [{ action: 'aws:runShellScript', name: 'selfDeploy', inputs: { runCommand: ['true'] } }],
});

let plane: ControlPlane;
let autoScaling: AutoScalingClient;
let ssm: SSMClient;

async function startPlane(options: ControlPlaneOptions = {}): Promise<void> {
  plane = await ControlPlane.start({ timeScale: 100, ...options });
  plane.ssm.putDocument('SelfDeploy', DOCUMENT);
  autoScaling = new AutoScalingClient(clientConfig());
  ssm = new SSMClient(clientConfig());
}

/** The control plane's own credentials; no SDK retries, so each refusal shows. */
function clientConfig() {
  return {
    endpoint: plane.endpoint,
    region: 'us-east-1',
    credentials: plane.credentials,
    maxAttempts: 1,
  };
}

async function instancesOf(group: string) {
  const { AutoScalingGroups } = await autoScaling.send(
    new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [group] }),
  );
  return AutoScalingGroups?.[0]?.Instances ?? [];
}

async function until<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 5_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

afterEach(async () => {
  autoScaling?.destroy();
  ssm?.destroy();
  await plane?.close();
});

describe('Auto Scaling over the awsQuery protocol', () => {
  it('holds a launched instance in Pending:Wait behind the hook and puts it in service on CONTINUE', async () => {
    await startPlane();
    await autoScaling.send(
      new CreateAutoScalingGroupCommand({ AutoScalingGroupName: 'web', MinSize: 0, MaxSize: 5 }),
    );
    await autoScaling.send(
      new PutLifecycleHookCommand({
        AutoScalingGroupName: 'web',
        LifecycleHookName: 'deploy',
        LifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING',
        HeartbeatTimeout: 600,
        DefaultResult: 'ABANDON',
      }),
    );
    await autoScaling.send(
      new SetDesiredCapacityCommand({ AutoScalingGroupName: 'web', DesiredCapacity: 2 }),
    );

    const instances = await instancesOf('web');
    expect(instances.map((i) => i.LifecycleState)).toEqual(['Pending:Wait', 'Pending:Wait']);
    const id = instances[0]?.InstanceId as string;
    const { AutoScalingInstances } = await autoScaling.send(
      new DescribeAutoScalingInstancesCommand({ InstanceIds: [id, 'i-00000000000000000'] }),
    );
    expect(AutoScalingInstances).toEqual([
      expect.objectContaining({
        InstanceId: id,
        AutoScalingGroupName: 'web',
        LifecycleState: 'Pending:Wait',
      }),
    ]);
    const { LifecycleHooks } = await autoScaling.send(
      new DescribeLifecycleHooksCommand({ AutoScalingGroupName: 'web' }),
    );
    expect(LifecycleHooks).toEqual([
      expect.objectContaining({
        LifecycleHookName: 'deploy',
        HeartbeatTimeout: 600,
        GlobalTimeout: 60_000,
        DefaultResult: 'ABANDON',
      }),
    ]);

    await autoScaling.send(
      new CompleteLifecycleActionCommand({
        AutoScalingGroupName: 'web',
        LifecycleHookName: 'deploy',
        InstanceId: id,
        LifecycleActionResult: 'CONTINUE',
      }),
    );
    expect((await instancesOf('web')).find((i) => i.InstanceId === id)?.LifecycleState).toBe('InService');
  });

  it('publishes the launch lifecycle event with its token, and the token completes the action once', async () => {
    await startPlane();
    plane.autoScaling.createGroup({ name: 'web', maxSize: 3, hook: { name: 'deploy' } });
    plane.autoScaling.setDesiredCapacity('web', 1);
    const event = plane.bus.published.find((e) => e['detail-type'] === LAUNCH_DETAIL_TYPE) as AwsEvent;
    expect(event).toMatchObject({
      source: 'aws.autoscaling',
      detail: {
        AutoScalingGroupName: 'web',
        LifecycleHookName: 'deploy',
        LifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING',
        Origin: 'EC2',
        Destination: 'AutoScalingGroup',
      },
    });
    const token = event.detail.LifecycleActionToken as string;
    expect(token).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const complete = new CompleteLifecycleActionCommand({
      AutoScalingGroupName: 'web',
      LifecycleHookName: 'deploy',
      LifecycleActionToken: token,
      LifecycleActionResult: 'CONTINUE',
    });

    await autoScaling.send(complete);
    const again = autoScaling.send(complete);

    await expect(again).rejects.toMatchObject({
      name: 'ValidationError',
      message: `No active Lifecycle Action found with token ${token}`,
      $metadata: { httpStatusCode: 400 },
    });
  });

  it('terminates an abandoned instance and launches a replacement', async () => {
    await startPlane();
    plane.autoScaling.createGroup({ name: 'web', maxSize: 3, desiredCapacity: 1, hook: { name: 'deploy' } });
    const [first] = await instancesOf('web');

    await autoScaling.send(
      new CompleteLifecycleActionCommand({
        AutoScalingGroupName: 'web',
        LifecycleHookName: 'deploy',
        InstanceId: first?.InstanceId,
        LifecycleActionResult: 'ABANDON',
      }),
    );

    const after = await instancesOf('web');
    expect(after).toHaveLength(1);
    expect(after[0]?.InstanceId).not.toBe(first?.InstanceId);
    expect(after[0]?.LifecycleState).toBe('Pending:Wait');
    const heartbeat = autoScaling.send(
      new RecordLifecycleActionHeartbeatCommand({
        AutoScalingGroupName: 'web',
        LifecycleHookName: 'deploy',
        InstanceId: first?.InstanceId,
      }),
    );
    await expect(heartbeat).rejects.toMatchObject({
      name: 'ValidationError',
      message: `No active Lifecycle Action found with instance ID ${first?.InstanceId}`,
    });
  });

  it("applies the hook's default result when the heartbeat timeout passes, and a heartbeat extends the wait", async () => {
    // 30 s heartbeat timeout at 100x: 300 ms of real time.
    await startPlane();
    plane.autoScaling.createGroup({
      name: 'web',
      maxSize: 2,
      desiredCapacity: 2,
      hook: { name: 'deploy', heartbeatTimeout: 30, defaultResult: 'CONTINUE' },
    });
    const [kept, idle] = await instancesOf('web');
    const heartbeat = () =>
      autoScaling.send(
        new RecordLifecycleActionHeartbeatCommand({
          AutoScalingGroupName: 'web',
          LifecycleHookName: 'deploy',
          InstanceId: kept?.InstanceId,
        }),
      );

    await new Promise((resolve) => setTimeout(resolve, 200));
    await heartbeat();
    await until(
      async () =>
        (await instancesOf('web')).find((i) => i.InstanceId === idle?.InstanceId)?.LifecycleState ===
        'InService',
    );

    expect((await instancesOf('web')).find((i) => i.InstanceId === kept?.InstanceId)?.LifecycleState).toBe(
      'Pending:Wait',
    );
    await until(async () => (await instancesOf('web')).every((i) => i.LifecycleState === 'InService'));
  });

  it('refuses a desired capacity above the maximum with ValidationError', async () => {
    await startPlane();
    plane.autoScaling.createGroup({ name: 'web', maxSize: 2 });

    const call = autoScaling.send(
      new SetDesiredCapacityCommand({ AutoScalingGroupName: 'web', DesiredCapacity: 3 }),
    );

    await expect(call).rejects.toMatchObject({
      name: 'ValidationError',
      message: expect.stringContaining('above max value 2'),
    });
  });
});

describe('SSM over the awsJson1_1 protocol', () => {
  it('answers InvalidInstanceId until the agent registers, then runs the command and reports it', async () => {
    // 5 simulated seconds at 100x: the agent registers after about 50 ms.
    await startPlane({
      agentDelaySeconds: 5,
      invocationVisibilitySeconds: 10,
      // Still running when GetCommandInvocation is first asked (a finished run is visible at once).
      agent: async () => {
        await new Promise((resolve) => setTimeout(resolve, 300));
        return {
          exitCode: 0,
          stdout: 'o'.repeat(30_000),
          stderr: 'e'.repeat(9_000),
          timedOut: false,
        };
      },
    });
    plane.autoScaling.createGroup({ name: 'web', maxSize: 1, desiredCapacity: 1, hook: { name: 'deploy' } });
    const id = plane.autoScaling.instances()[0]?.id as string;
    const send = () =>
      ssm.send(
        new SendCommandCommand({
          DocumentName: 'SelfDeploy',
          InstanceIds: [id],
          Parameters: { revision: ['abc123'] },
        }),
      );

    await expect(send()).rejects.toMatchObject({
      name: 'InvalidInstanceId',
      $metadata: { httpStatusCode: 400 },
    });
    await until(async () => {
      const { InstanceInformationList } = await ssm.send(
        new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [id] }] }),
      );
      return InstanceInformationList?.[0]?.PingStatus === 'Online';
    });
    const { Command } = await send();
    const commandId = Command?.CommandId as string;

    await expect(
      ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: id })),
    ).rejects.toMatchObject({
      name: 'InvocationDoesNotExist',
    });
    const byId = await ssm.send(new ListCommandsCommand({ CommandId: commandId }));
    expect(byId.Commands?.[0]).toMatchObject({
      DocumentName: 'SelfDeploy',
      Parameters: { revision: ['abc123'] },
    });
    const byInstance = await ssm.send(
      new ListCommandsCommand({ InstanceId: id, Filters: [{ key: 'DocumentName', value: 'SelfDeploy' }] }),
    );
    expect(byInstance.Commands?.map((c) => c.CommandId)).toEqual([commandId]);
    const invocation = await until(async () => {
      try {
        const result = await ssm.send(
          new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: id }),
        );
        return result.Status === 'Success' ? result : undefined;
      } catch {
        return undefined;
      }
    });
    expect(invocation).toMatchObject({ ResponseCode: 0, StatusDetails: 'Success' });
    expect(invocation.StandardOutputContent).toHaveLength(24_000);
    expect(invocation.StandardErrorContent).toHaveLength(8_000);
    const { CommandInvocations } = await ssm.send(
      new ListCommandInvocationsCommand({ CommandId: commandId, Details: true }),
    );
    expect(CommandInvocations?.[0]?.CommandPlugins?.[0]).toMatchObject({
      Name: 'selfDeploy',
      Status: 'Success',
    });
    expect(CommandInvocations?.[0]?.CommandPlugins?.[0]?.Output).toHaveLength(2_500);
    const statusEvent = plane.bus.published.find(
      (e) => e['detail-type'] === COMMAND_STATUS_DETAIL_TYPE && e.detail.status === 'Success',
    );
    expect(statusEvent?.detail).toMatchObject({
      'command-id': commandId,
      'document-name': 'SelfDeploy',
      parameters: { revision: ['abc123'] },
      'expire-after': expect.any(String),
    });
  });

  it('lets agents register no faster than the registration rate on a big scale-out', async () => {
    await startPlane({ timeScale: 1, agentRegistrationsPerSecond: 20 });
    plane.autoScaling.createGroup({ name: 'web', maxSize: 5 });
    const started = Date.now();

    plane.autoScaling.setDesiredCapacity('web', 5);

    expect(plane.ssm.managedInstances()).toHaveLength(1);
    await until(() => plane.ssm.managedInstances().length === 5);
    expect(Date.now() - started).toBeGreaterThanOrEqual(180);
  });

  it('gives registration slots in the order agents become ready, not the order of launch', async () => {
    // The first instance's agent is ready after 40 simulated seconds, the second's after 1.
    await startPlane({
      timeScale: 20,
      agentRegistrationsPerSecond: 1,
      agentDelaySeconds: (_, index) => (index === 0 ? 40 : 1),
    });
    plane.autoScaling.createGroup({ name: 'web', maxSize: 2 });
    const started = Date.now();

    plane.autoScaling.setDesiredCapacity('web', 2);

    const [early] = await until(() => {
      const managed = plane.ssm.managedInstances();
      return managed.length > 0 ? managed : undefined;
    });
    // Ready after 1 s, it registers then: nothing makes it wait for the slow one's slot.
    expect(early?.id).toBe(plane.autoScaling.instances()[1]?.id);
    expect(((early?.registeredAt ?? 0) - started) * 20).toBeLessThan(10_000);
  });

  it('reports a failing script as Failed with its exit code, and rejects parameters the document does not allow', async () => {
    await startPlane({ agent: async () => ({ exitCode: 3, stdout: '', stderr: 'boom', timedOut: false }) });
    plane.autoScaling.createGroup({ name: 'web', maxSize: 1, desiredCapacity: 1 });
    const id = plane.autoScaling.instances()[0]?.id as string;

    const bad = ssm.send(
      new SendCommandCommand({
        DocumentName: 'SelfDeploy',
        InstanceIds: [id],
        Parameters: { revision: ['$(reboot)'] },
      }),
    );
    const { Command } = await ssm.send(
      new SendCommandCommand({ DocumentName: 'SelfDeploy', InstanceIds: [id] }),
    );

    await expect(bad).rejects.toMatchObject({ name: 'InvalidParameters' });
    await until(async () => {
      const { CommandInvocations } = await ssm.send(
        new ListCommandInvocationsCommand({ CommandId: Command?.CommandId }),
      );
      return CommandInvocations?.[0]?.Status === 'Failed';
    });
    const { Commands } = await ssm.send(new ListCommandsCommand({ CommandId: Command?.CommandId }));
    expect(Commands?.[0]).toMatchObject({ Status: 'Failed', ErrorCount: 1, CompletedCount: 1 });
  });

  it('stores and reads parameters, refusing to overwrite unless asked', async () => {
    await startPlane();
    await ssm.send(
      new PutParameterCommand({ Name: '/selfdeploy/production/revision', Value: 'v1', Type: 'String' }),
    );

    const again = ssm.send(
      new PutParameterCommand({ Name: '/selfdeploy/production/revision', Value: 'v2', Type: 'String' }),
    );
    await ssm.send(
      new PutParameterCommand({ Name: '/selfdeploy/production/revision', Value: 'v3', Overwrite: true }),
    );

    await expect(again).rejects.toMatchObject({ name: 'ParameterAlreadyExists' });
    const { Parameter } = await ssm.send(
      new GetParameterCommand({ Name: '/selfdeploy/production/revision' }),
    );
    expect(Parameter).toMatchObject({ Value: 'v3', Version: 2 });
    await expect(ssm.send(new GetParameterCommand({ Name: '/missing' }))).rejects.toMatchObject({
      name: 'ParameterNotFound',
    });
  });
});

describe('throttling', () => {
  it("answers each protocol's throttling error, which the SDK retries", async () => {
    // The first three calls are refused, then every call passes.
    const draws = [0, 0, 0];
    await startPlane({ throttle: { fraction: 0.5, random: () => draws.shift() ?? 0.9 } });
    plane.autoScaling.createGroup({ name: 'web', maxSize: 1 });

    const refused = autoScaling.send(new DescribeAutoScalingGroupsCommand({}));
    const refusedSsm = ssm.send(new DescribeInstanceInformationCommand({}));
    await expect(refused).rejects.toMatchObject({ name: 'Throttling', message: 'Rate exceeded' });
    await expect(refusedSsm).rejects.toMatchObject({ name: 'ThrottlingException', message: 'Rate exceeded' });
    const retrying = new AutoScalingClient({ ...clientConfig(), maxAttempts: 3 });
    const result = await retrying.send(new DescribeAutoScalingGroupsCommand({}));
    retrying.destroy();

    expect(result.$metadata.attempts).toBe(2);
    expect(result.AutoScalingGroups?.[0]?.AutoScalingGroupName).toBe('web');
  });

  it('limits an operation with a token bucket', async () => {
    await startPlane({
      throttle: { rateLimits: { DescribeAutoScalingGroups: { ratePerSecond: 0.001, burst: 2 } } },
    });

    const results = await Promise.allSettled(
      [1, 2, 3].map(() => autoScaling.send(new DescribeAutoScalingGroupsCommand({}))),
    );

    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'rejected']);
    expect(plane.throttle.refused.get('DescribeAutoScalingGroups')).toBe(1);
  });
});

describe('event delivery', () => {
  it('routes events through the CDK patterns and retries a failing target twice', async () => {
    await startPlane({ retryDelaysSeconds: [1, 1] });
    const launches: AwsEvent[] = [];
    let statusAttempts = 0;
    plane.bus.addRule('launch', launchLifecyclePattern(['web']), async (event) => {
      launches.push(event);
    });
    plane.bus.addRule('status', commandStatusPattern('SelfDeploy'), async () => {
      statusAttempts++;
      throw new Error('handler failed');
    });
    plane.autoScaling.createGroup({ name: 'web', maxSize: 2, hook: { name: 'deploy' } });
    plane.autoScaling.createGroup({ name: 'other', maxSize: 2, hook: { name: 'deploy' } });

    plane.autoScaling.setDesiredCapacity('web', 1);
    plane.autoScaling.setDesiredCapacity('other', 1);
    const id = plane.autoScaling.group('web').instances.keys().next().value as string;
    await ssm.send(new SendCommandCommand({ DocumentName: 'SelfDeploy', InstanceIds: [id] }));
    await until(() => plane.bus.deadLetters.length === 1);
    await plane.bus.idle();

    expect(launches.map((e) => e.detail.AutoScalingGroupName)).toEqual(['web']);
    expect(statusAttempts).toBe(3);
  });

  it('drops and duplicates deliveries as the faults say', async () => {
    await startPlane({
      faults: {
        drop: (event) => event.detail.EC2InstanceId === plane.autoScaling.instances()[0]?.id,
        duplicates: () => 2,
      },
    });
    const received: string[] = [];
    plane.bus.addRule('launch', launchLifecyclePattern(['web']), async (event) => {
      received.push(event.detail.EC2InstanceId as string);
    });

    plane.autoScaling.createGroup({ name: 'web', maxSize: 2, desiredCapacity: 2, hook: { name: 'deploy' } });
    await plane.bus.idle();

    const [lost, delivered] = plane.autoScaling.instances().map((i) => i.id);
    expect(received).toEqual([delivered, delivered, delivered]);
    expect(plane.bus.dropped.map((e) => e.detail.EC2InstanceId)).toEqual([lost]);
  });
});

describe('scaling activities, lifecycle hooks and warm pools over the awsQuery protocol', () => {
  const launchEvents = () => plane.bus.published.filter((e) => e['detail-type'] === LAUNCH_DETAIL_TYPE);
  const complete = (InstanceId: string, result = 'CONTINUE') =>
    autoScaling.send(
      new CompleteLifecycleActionCommand({
        AutoScalingGroupName: 'web',
        LifecycleHookName: 'deploy',
        InstanceId,
        LifecycleActionResult: result,
      }),
    );

  it('records every launch as a scaling activity, newest first, paged with MaxRecords and NextToken', async () => {
    await startPlane();
    plane.autoScaling.createGroup({ name: 'web', maxSize: 5, hook: { name: 'deploy' } });
    plane.autoScaling.setDesiredCapacity('web', 1);
    const [first] = plane.autoScaling.instances().map((i) => i.id);
    await complete(first as string);
    plane.autoScaling.setDesiredCapacity('web', 3);
    const [, second, third] = plane.autoScaling.instances().map((i) => i.id);

    const page1 = await autoScaling.send(
      new DescribeScalingActivitiesCommand({ AutoScalingGroupName: 'web', MaxRecords: 2 }),
    );
    const page2 = await autoScaling.send(
      new DescribeScalingActivitiesCommand({
        AutoScalingGroupName: 'web',
        MaxRecords: 2,
        NextToken: page1.NextToken,
      }),
    );

    // Still waiting (in progress) first, newest first; then the finished ones.
    expect(page1.Activities?.map((a) => a.Description)).toEqual([
      `Launching a new EC2 instance: ${third}`,
      `Launching a new EC2 instance: ${second}`,
    ]);
    expect(page1.Activities?.[0]).toMatchObject({
      ActivityId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      AutoScalingGroupName: 'web',
      StatusCode: 'MidLifecycleAction',
      Cause: expect.stringMatching(
        /^At \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ an instance was started in response to a difference between desired and actual capacity, increasing the capacity from 1 to 3\.$/,
      ),
      StartTime: expect.any(Date),
      Details: expect.stringContaining('Availability Zone'),
    });
    expect(page2.Activities).toEqual([
      expect.objectContaining({
        Description: `Launching a new EC2 instance: ${first}`,
        StatusCode: 'Successful',
        Progress: 100,
        EndTime: expect.any(Date),
      }),
    ]);
    expect(page2.NextToken).toBeUndefined();
    await expect(
      autoScaling.send(
        new DescribeScalingActivitiesCommand({ AutoScalingGroupName: 'web', MaxRecords: 101 }),
      ),
    ).rejects.toMatchObject({ name: 'ValidationError' });
    const byId = await autoScaling.send(
      new DescribeScalingActivitiesCommand({
        ActivityIds: [page2.Activities?.[0]?.ActivityId as string, 'unknown-activity'],
      }),
    );
    expect(byId.Activities?.map((a) => a.Description)).toEqual([`Launching a new EC2 instance: ${first}`]);
  });

  it('ends an abandoned launch Cancelled with the reason AWS gives, and records the termination', async () => {
    await startPlane();
    plane.autoScaling.createGroup({ name: 'web', maxSize: 2, desiredCapacity: 1, hook: { name: 'deploy' } });
    const [abandoned] = plane.autoScaling.instances().map((i) => i.id);

    await complete(abandoned as string, 'ABANDON');

    const { Activities } = await autoScaling.send(
      new DescribeScalingActivitiesCommand({ AutoScalingGroupName: 'web' }),
    );
    const mine = Activities?.filter((a) => a.Description?.endsWith(`: ${abandoned}`));
    expect(mine?.map((a) => [a.Description, a.StatusCode])).toEqual([
      [`Terminating EC2 instance: ${abandoned}`, 'Successful'],
      [`Launching a new EC2 instance: ${abandoned}`, 'Cancelled'],
    ]);
    expect(mine?.[1]?.StatusMessage).toMatch(
      /^Instance failed to complete user's Lifecycle Action: Lifecycle Action with token [0-9a-f-]{36} was abandoned: Lifecycle Action Completed with ABANDON Result$/,
    );
  });

  it('describes a hook with its NotificationMetadata, timeouts and default result, by name', async () => {
    await startPlane();
    plane.autoScaling.createGroup({
      name: 'web',
      maxSize: 1,
      hook: { name: 'deploy', heartbeatTimeout: 900, notificationMetadata: '{"revision":"abc123"}' },
    });

    const named = await autoScaling.send(
      new DescribeLifecycleHooksCommand({ AutoScalingGroupName: 'web', LifecycleHookNames: ['deploy'] }),
    );
    const other = await autoScaling.send(
      new DescribeLifecycleHooksCommand({ AutoScalingGroupName: 'web', LifecycleHookNames: ['other'] }),
    );

    expect(named.LifecycleHooks).toEqual([
      {
        LifecycleHookName: 'deploy',
        AutoScalingGroupName: 'web',
        LifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING',
        NotificationMetadata: '{"revision":"abc123"}',
        HeartbeatTimeout: 900,
        GlobalTimeout: 90_000,
        DefaultResult: 'ABANDON',
      },
    ]);
    expect(other.LifecycleHooks).toEqual([]);
  });

  it("refuses a token with another instance's id, and a token or id of a wait that has ended", async () => {
    await startPlane();
    plane.autoScaling.createGroup({ name: 'web', maxSize: 2, desiredCapacity: 2, hook: { name: 'deploy' } });
    const [a, b] = plane.autoScaling.instances();
    const tokenOfA = a?.actions.get('deploy')?.token as string;
    const crossed = {
      AutoScalingGroupName: 'web',
      LifecycleHookName: 'deploy',
      LifecycleActionToken: tokenOfA,
      InstanceId: b?.id,
    };

    const completion = autoScaling.send(
      new CompleteLifecycleActionCommand({ ...crossed, LifecycleActionResult: 'CONTINUE' }),
    );
    const heartbeat = autoScaling.send(new RecordLifecycleActionHeartbeatCommand(crossed));
    const otherHook = autoScaling.send(
      new CompleteLifecycleActionCommand({
        AutoScalingGroupName: 'web',
        LifecycleHookName: 'someone-elses-hook',
        InstanceId: a?.id,
        LifecycleActionResult: 'CONTINUE',
      }),
    );

    const refusal = {
      name: 'ValidationError',
      message: `No active Lifecycle Action found with token ${tokenOfA}`,
    };
    await expect(completion).rejects.toMatchObject(refusal);
    await expect(heartbeat).rejects.toMatchObject(refusal);
    await expect(otherHook).rejects.toMatchObject({
      name: 'ValidationError',
      message: `No active Lifecycle Action found with instance ID ${a?.id}`,
    });
    expect(plane.autoScaling.instances().map((i) => i.state)).toEqual(['Pending:Wait', 'Pending:Wait']);
  });

  it('warms instances behind the hook, then draws them into service with a new wait, token and activity', async () => {
    await startPlane();
    plane.autoScaling.createGroup({ name: 'web', maxSize: 2, hook: { name: 'deploy' } });
    await autoScaling.send(
      new PutWarmPoolCommand({ AutoScalingGroupName: 'web', MinSize: 1, MaxGroupPreparedCapacity: 1 }),
    );
    const pool = await autoScaling.send(new DescribeWarmPoolCommand({ AutoScalingGroupName: 'web' }));
    const warmed = pool.Instances?.[0]?.InstanceId as string;
    expect(pool.Instances?.map((i) => i.LifecycleState)).toEqual(['Warmed:Pending:Wait']);
    expect(pool.WarmPoolConfiguration).toMatchObject({ MinSize: 1, PoolState: 'Stopped' });
    expect(launchEvents().map((e) => e.detail)).toEqual([
      expect.objectContaining({ EC2InstanceId: warmed, Origin: 'EC2', Destination: 'WarmPool' }),
    ]);
    const warmToken = launchEvents()[0]?.detail.LifecycleActionToken as string;
    await until(() => plane.ssm.managedInstances().some((m) => m.id === warmed && m.online));
    const { Command } = await ssm.send(
      new SendCommandCommand({ DocumentName: 'SelfDeploy', InstanceIds: [warmed] }),
    );
    await until(() => plane.ssm.command(Command?.CommandId as string)?.status === 'Success');

    await complete(warmed);
    const stopped = await autoScaling.send(new DescribeWarmPoolCommand({ AutoScalingGroupName: 'web' }));
    const agentWhileStopped = await ssm.send(
      new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [warmed] }] }),
    );
    await autoScaling.send(
      new SetDesiredCapacityCommand({ AutoScalingGroupName: 'web', DesiredCapacity: 1 }),
    );

    expect(stopped.Instances?.map((i) => i.LifecycleState)).toEqual(['Warmed:Stopped']);
    expect(agentWhileStopped.InstanceInformationList?.[0]?.PingStatus).toBe('ConnectionLost');
    expect((await instancesOf('web')).map((i) => [i.InstanceId, i.LifecycleState])).toEqual([
      [warmed, 'Pending:Wait'],
    ]);
    const leaving = launchEvents().find((e) => e.detail.Origin === 'WarmPool');
    expect(leaving?.detail).toMatchObject({ EC2InstanceId: warmed, Destination: 'AutoScalingGroup' });
    expect(leaving?.detail.LifecycleActionToken).not.toBe(warmToken);
    await expect(
      autoScaling.send(
        new CompleteLifecycleActionCommand({
          AutoScalingGroupName: 'web',
          LifecycleHookName: 'deploy',
          LifecycleActionToken: warmToken,
          LifecycleActionResult: 'CONTINUE',
        }),
      ),
    ).rejects.toMatchObject({ message: `No active Lifecycle Action found with token ${warmToken}` });
    const { Activities } = await autoScaling.send(
      new DescribeScalingActivitiesCommand({ AutoScalingGroupName: 'web' }),
    );
    expect(
      Activities?.filter((a) => a.Description?.endsWith(warmed)).map((a) => [a.Description, a.StatusCode]),
    ).toEqual([
      [`Launching a new EC2 instance from warm pool: ${warmed}`, 'MidLifecycleAction'],
      [`Launching a new EC2 instance into warm pool: ${warmed}`, 'Successful'],
    ]);
    // The earlier wait's command stays in the instance's history.
    const history = await ssm.send(new ListCommandsCommand({ InstanceId: warmed }));
    expect(history.Commands?.map((c) => [c.CommandId, c.Status])).toEqual([[Command?.CommandId, 'Success']]);
    // The pool refills to its MinSize behind the drawn instance.
    const refilled = await autoScaling.send(new DescribeWarmPoolCommand({ AutoScalingGroupName: 'web' }));
    expect(refilled.Instances?.map((i) => i.InstanceId === warmed)).toEqual([false]);
  });

  it('returns an instance to the warm pool on scale-in when ReuseOnScaleIn is set, and reuses it', async () => {
    await startPlane();
    plane.autoScaling.createGroup({ name: 'web', maxSize: 1, desiredCapacity: 1, hook: { name: 'deploy' } });
    const [id] = plane.autoScaling.instances().map((i) => i.id);
    await complete(id as string);
    await autoScaling.send(
      new PutWarmPoolCommand({
        AutoScalingGroupName: 'web',
        MinSize: 0,
        InstanceReusePolicy: { ReuseOnScaleIn: true },
      }),
    );

    await autoScaling.send(
      new SetDesiredCapacityCommand({ AutoScalingGroupName: 'web', DesiredCapacity: 0 }),
    );
    const pooled = await autoScaling.send(new DescribeWarmPoolCommand({ AutoScalingGroupName: 'web' }));
    await autoScaling.send(
      new SetDesiredCapacityCommand({ AutoScalingGroupName: 'web', DesiredCapacity: 1 }),
    );

    expect(pooled.Instances?.map((i) => [i.InstanceId, i.LifecycleState])).toEqual([[id, 'Warmed:Stopped']]);
    expect((await instancesOf('web')).map((i) => [i.InstanceId, i.LifecycleState])).toEqual([
      [id, 'Pending:Wait'],
    ]);
    expect(
      launchEvents()
        .filter((e) => e.detail.EC2InstanceId === id)
        .map((e) => e.detail.Origin),
    ).toEqual(['EC2', 'WarmPool']);
  });
});

describe('several launch hooks, and calls an IAM policy denies', () => {
  it('holds an instance until every launch hook has said CONTINUE, each with its own event and token', async () => {
    await startPlane();
    plane.autoScaling.createGroup({ name: 'web', maxSize: 1, hook: { name: 'deploy' } });
    plane.autoScaling.putLifecycleHook('web', { name: 'other-team' });
    plane.autoScaling.setDesiredCapacity('web', 1);
    const [instance] = await instancesOf('web');
    const events = plane.bus.published.filter((e) => e['detail-type'] === LAUNCH_DETAIL_TYPE);
    const { LifecycleHooks } = await autoScaling.send(
      new DescribeLifecycleHooksCommand({ AutoScalingGroupName: 'web' }),
    );

    await autoScaling.send(
      new CompleteLifecycleActionCommand({
        AutoScalingGroupName: 'web',
        LifecycleHookName: 'deploy',
        InstanceId: instance?.InstanceId,
        LifecycleActionResult: 'CONTINUE',
      }),
    );
    const afterOne = (await instancesOf('web'))[0]?.LifecycleState;
    await autoScaling.send(
      new CompleteLifecycleActionCommand({
        AutoScalingGroupName: 'web',
        LifecycleHookName: 'other-team',
        LifecycleActionToken: events[1]?.detail.LifecycleActionToken as string,
        LifecycleActionResult: 'CONTINUE',
      }),
    );

    expect(LifecycleHooks?.map((h) => h.LifecycleHookName)).toEqual(['deploy', 'other-team']);
    expect(events.map((e) => e.detail.LifecycleHookName)).toEqual(['deploy', 'other-team']);
    expect(events[0]?.detail.LifecycleActionToken).not.toBe(events[1]?.detail.LifecycleActionToken);
    expect(afterOne).toBe('Pending:Wait');
    expect((await instancesOf('web'))[0]?.LifecycleState).toBe('InService');
  });

  it("refuses the calls a fault denies with each protocol's access-denied error", async () => {
    await startPlane({
      denied: (call) => call.operation === 'SendCommand' || call.operation === 'SetDesiredCapacity',
    });
    plane.autoScaling.createGroup({ name: 'web', maxSize: 1, desiredCapacity: 1 });
    const id = plane.autoScaling.instances()[0]?.id as string;

    const send = ssm.send(new SendCommandCommand({ DocumentName: 'SelfDeploy', InstanceIds: [id] }));
    const scale = autoScaling.send(
      new SetDesiredCapacityCommand({ AutoScalingGroupName: 'web', DesiredCapacity: 0 }),
    );

    await expect(send).rejects.toMatchObject({
      name: 'AccessDeniedException',
      message: expect.stringContaining('is not authorized to perform: ssm:SendCommand'),
    });
    await expect(scale).rejects.toMatchObject({ name: 'AccessDenied', $metadata: { httpStatusCode: 403 } });
    expect(plane.ssm.commands()).toEqual([]);
    expect(plane.callsFor(id).map((c) => c.error)).toEqual(['AccessDeniedException']);
  });
});

describe('EC2 and Lambda calls', () => {
  it('records them with the instances they name, refuses denied ones and throttles them in their own words', async () => {
    // The first call passes, the denied one draws nothing, the next two are throttled.
    const draws = [0.9, 0, 0];
    await startPlane({
      denied: (call) => call.service === 'ec2' && call.operation === 'CreateTags',
      throttle: { fraction: 0.5, random: () => draws.shift() ?? 0.9 },
      instanceVisibilitySeconds: 0,
    });
    plane.autoScaling.createGroup({ name: 'web', maxSize: 1, desiredCapacity: 1 });
    const id = plane.autoScaling.instances()[0]?.id as string;
    const ec2 = new EC2Client(clientConfig());
    const lambda = new LambdaClient(clientConfig());
    const outcome = (call: Promise<unknown>) =>
      call.then(
        () => 'ok',
        (error: Error & { $metadata?: { httpStatusCode?: number } }) =>
          `${error.name} ${error.$metadata?.httpStatusCode}`,
      );

    const described = await outcome(ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] })));
    const tagged = await outcome(
      ec2.send(new CreateTagsCommand({ Resources: [id], Tags: [{ Key: 'k', Value: 'v' }] })),
    );
    const throttledEc2 = await outcome(ec2.send(new DescribeTagsCommand({})));
    const throttledLambda = await outcome(lambda.send(new InvokeCommand({ FunctionName: 'nobody' })));
    ec2.destroy();
    lambda.destroy();

    expect([described, tagged, throttledEc2, throttledLambda]).toEqual([
      'ok',
      'UnauthorizedOperation 403',
      'RequestLimitExceeded 503',
      'TooManyRequestsException 429',
    ]);
    expect(plane.callsFor(id)).toEqual([
      { service: 'ec2', operation: 'DescribeInstances', instanceIds: [id] },
      { service: 'ec2', operation: 'CreateTags', instanceIds: [id], error: 'UnauthorizedOperation' },
    ]);
    expect(plane.calls.at(-1)).toEqual({
      service: 'lambda',
      operation: 'Invoke',
      instanceIds: [],
      error: 'TooManyRequestsException',
    });
  });
});

describe('boot order of simulated instances', () => {
  it('registers the agent before boot finishes; a stopped warmed instance boots again without user data', async () => {
    const boots: [string, string, boolean][] = [];
    const machine: Machine = {
      booted: (instance: Instance, firstBoot: boolean) => boots.push(['booted', instance.id, firstBoot]),
      stopped: (instance: Instance) => boots.push(['stopped', instance.id, false]),
    };
    // 5 s to register, 20 s more to boot, at 100x: 50 ms, then 200 ms.
    await startPlane({ agentDelaySeconds: 5, bootDelaySeconds: 20, machine });
    plane.autoScaling.createGroup({ name: 'web', maxSize: 1, hook: { name: 'deploy' } });
    plane.autoScaling.putWarmPool('web', { minSize: 1 });
    const id = plane.autoScaling.instances()[0]?.id as string;

    await until(() => plane.ssm.managedInstances().some((m) => m.id === id));
    const bootsWhenOnline = boots.length;
    await until(() => boots.length === 1);
    plane.autoScaling.completeLifecycleAction(
      { groupName: 'web', hookName: 'deploy', instanceId: id },
      'CONTINUE',
    );
    plane.autoScaling.setDesiredCapacity('web', 1);
    const mine = () => boots.filter(([, instance]) => instance === id);
    await until(() => mine().length === 3);

    expect(bootsWhenOnline).toBe(0);
    expect(mine()).toEqual([
      ['booted', id, true],
      ['stopped', id, false],
      ['booted', id, false],
    ]);
  });
});
