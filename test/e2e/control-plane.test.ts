import {
  AutoScalingClient,
  CompleteLifecycleActionCommand,
  CreateAutoScalingGroupCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeAutoScalingInstancesCommand,
  DescribeLifecycleHooksCommand,
  PutLifecycleHookCommand,
  RecordLifecycleActionHeartbeatCommand,
  SetDesiredCapacityCommand,
} from '@aws-sdk/client-auto-scaling';
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
import { ControlPlane, type ControlPlaneOptions } from '../../scripts/local/control-plane/control-plane';
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

/** Dummy credentials; no SDK retries, so each refusal shows. */
function clientConfig() {
  return {
    endpoint: plane.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
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
