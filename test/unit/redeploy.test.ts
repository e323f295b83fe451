import {
  DescribeAutoScalingGroupsCommand,
  DescribeAutoScalingInstancesCommand,
} from '@aws-sdk/client-auto-scaling';
import { GetParametersByPathCommand, SendCommandCommand } from '@aws-sdk/client-ssm';
import { route } from '../../functions/orchestrator/router';
import {
  agentStatuses,
  autoScaling,
  awsCallCount,
  awsError,
  baseConfig,
  describedGroup,
  describedInstance,
  fixture,
  groupInstance,
  harness,
  INSTANCE,
  ssm,
  WAIT_QUEUE_URL,
} from './support';

const SHA = 'a'.repeat(40);
const release = (sha: string) => ({ sha, changedAt: '2026-11-26T09:00:00.000Z', reason: 'first deploy' });

const id = (n: number) => `i-${n.toString(16).padStart(17, '0')}`;

function agentsOnline(except: string[] = []) {
  agentStatuses((id) => (except.includes(id) ? 'ConnectionLost' : 'Online'));
}

/** The harness with group web deploying through Standby. */
function standbyHarness() {
  return harness({
    config: {
      ...baseConfig,
      groups: {
        ...baseConfig.groups,
        web: { lifecycleHookName: 'selfdeploy-launch', deployWith: 'standby' },
      },
    },
  });
}

function sendsCommands() {
  let n = 0;
  ssm.on(SendCommandCommand).callsFake(() => ({
    Command: { CommandId: `eeeeeeee-1111-2222-3333-${String(++n).padStart(12, '0')}` },
  }));
}

describe('manual redeploy', () => {
  it('redeploys a group of 120 in batches of at most 50 with rate controls, and says what it did', async () => {
    const { deps, metrics } = harness();
    const instances = Array.from({ length: 120 }, (_, i) => groupInstance(id(i + 1), 'InService'));
    instances.push(groupInstance(id(500), 'Pending:Wait'));
    autoScaling
      .on(DescribeAutoScalingGroupsCommand)
      .resolves({ AutoScalingGroups: [describedGroup('web', instances)] });
    agentsOnline();
    sendsCommands();

    const result = await route(deps, fixture('console-redeploy-group'));

    const sends = ssm.commandCalls(SendCommandCommand).map((call) => call.args[0].input);
    expect(sends.map((input) => input.InstanceIds?.length)).toEqual([50, 50, 20]);
    expect(new Set(sends.flatMap((input) => input.InstanceIds))).toEqual(
      new Set(instances.slice(0, 120).map((i) => i.InstanceId)),
    );
    for (const input of sends) {
      expect(input).toMatchObject({
        MaxConcurrency: '25%',
        MaxErrors: '0',
        Comment: 'selfdeploy redeploy',
        Parameters: expect.objectContaining({
          revision: [''],
          lifecycleHookName: [''],
          lifecycleActionToken: [''],
          autoScalingGroupName: ['web'],
        }),
      });
    }
    expect(result).toMatchObject({
      kind: 'redeploy',
      result: { instances: 120, skipped: [{ instanceId: id(500), reason: 'lifecycle state Pending:Wait' }] },
    });
    expect((result as { result: { commands: unknown[] } }).result.commands).toHaveLength(3);
    expect(metrics.filter((m) => m.name === 'ManualRedeploy').reduce((sum, m) => sum + m.value, 0)).toBe(120);
  });

  it("runs the release's SHA again: what the group's launches deploy", async () => {
    const { deps } = harness();
    ssm.on(GetParametersByPathCommand).resolves({
      Parameters: [{ Name: '/selfdeploy/web/release', Value: JSON.stringify(release(SHA)) }],
    });
    autoScaling.on(DescribeAutoScalingGroupsCommand).resolves({
      AutoScalingGroups: [describedGroup('web', [groupInstance(INSTANCE, 'InService')])],
    });
    agentsOnline();
    sendsCommands();

    const result = await route(deps, fixture('console-redeploy-group'));

    expect(ssm).toHaveReceivedCommandWith(SendCommandCommand, {
      Parameters: expect.objectContaining({ revision: [SHA], migrate: ['false'] }),
    });
    expect(result).toMatchObject({ result: { commands: [{ group: 'web', revision: SHA }] } });
  });

  it('refuses a revision before calling AWS: a new revision is a deploy, which sticks', async () => {
    const { deps } = harness();

    await expect(route(deps, fixture('console-redeploy-group-revision'))).rejects.toThrow(
      'redeploy takes no revision: it runs the release again; use deploy to change it ({"action":"deploy","group":"web","revision":"v2.4.1"})',
    );
    expect(awsCallCount()).toBe(0);
  });

  it('refuses a group that deploys through Standby before calling AWS, naming the deploy to use', async () => {
    const { deps } = standbyHarness();

    await expect(route(deps, fixture('console-redeploy-group'))).rejects.toMatchObject({
      name: 'ActionRefusedError',
      message:
        'redeploy refused: group web deploys through Standby (deployWith: standby) and a redeploy would restart the application while it serves; deploy the release instead, which takes each batch out of service first: {"action":"deploy","group":"web","revision":"<its release SHA>"}',
    });
    expect(awsCallCount()).toBe(0);
  });

  it('refuses named instances of a group that deploys through Standby, naming them, and sends nothing', async () => {
    const { deps } = standbyHarness();
    autoScaling.on(DescribeAutoScalingInstancesCommand).resolves({
      AutoScalingInstances: [
        describedInstance(INSTANCE, 'web', 'InService'),
        describedInstance(id(2), 'api', 'InService'),
        describedInstance(id(3), 'web', 'InService'),
      ],
    });
    agentsOnline();
    sendsCommands();

    await expect(
      route(deps, { action: 'redeploy', instanceIds: [INSTANCE, id(2), id(3)] }),
    ).rejects.toMatchObject({
      name: 'ActionRefusedError',
      message: expect.stringMatching(
        new RegExp(`^redeploy refused: group web \\(${INSTANCE}, ${id(3)}\\) deploys through Standby`),
      ),
    });
    expect(ssm).toHaveReceivedCommandTimes(SendCommandCommand, 0);
  });

  it('redeploys named instances with their own group settings and skips, with a reason, those it cannot', async () => {
    const { deps } = harness();
    const unmanaged = id(7);
    const missing = id(8);
    const offline = id(9);
    const waitingOne = id(10);
    autoScaling.on(DescribeAutoScalingInstancesCommand).resolves({
      AutoScalingInstances: [
        describedInstance(INSTANCE, 'web', 'InService'),
        describedInstance(id(2), 'api', 'InService'),
        describedInstance(unmanaged, 'batch', 'InService'),
        describedInstance(offline, 'web', 'InService'),
        describedInstance(waitingOne, 'web', 'Pending:Wait'),
      ],
    });
    agentsOnline([offline]);
    sendsCommands();

    const result = await route(deps, {
      action: 'redeploy',
      instanceIds: [INSTANCE, id(2), unmanaged, missing, offline, waitingOne, INSTANCE],
    });

    expect(ssm).toHaveReceivedCommandTimes(SendCommandCommand, 2);
    expect(ssm).toHaveReceivedCommandWith(SendCommandCommand, {
      InstanceIds: [INSTANCE],
      Parameters: expect.objectContaining({ environment: ['production'], appUser: ['deploy'] }),
    });
    expect(ssm).toHaveReceivedCommandWith(SendCommandCommand, {
      InstanceIds: [id(2)],
      Parameters: expect.objectContaining({ environment: ['staging'], appUser: ['deploy'] }),
    });
    const { skipped } = (result as { result: { skipped: { instanceId: string; reason: string }[] } }).result;
    expect(skipped).toEqual(
      expect.arrayContaining([
        { instanceId: unmanaged, reason: 'group batch is not managed' },
        { instanceId: missing, reason: 'not in any Auto Scaling group' },
        { instanceId: offline, reason: 'SSM agent ConnectionLost' },
        { instanceId: waitingOne, reason: 'lifecycle state Pending:Wait' },
      ]),
    );
    expect(skipped).toHaveLength(4);
  });

  it('refuses a group it does not manage before calling AWS', async () => {
    const { deps } = harness();

    await expect(route(deps, { action: 'redeploy', autoScalingGroupName: 'batch' })).rejects.toThrow(
      'group "batch" is not managed by selfdeploy (managed: web, api)',
    );
    expect(awsCallCount()).toBe(0);
  });

  it.each(['constructor', '__proto__', 'toString'])(
    'refuses group %s, which is not managed, before calling AWS (no SendCommand)',
    async (name) => {
      const { deps } = harness();
      autoScaling.on(DescribeAutoScalingGroupsCommand).resolves({
        AutoScalingGroups: [describedGroup('web', [groupInstance(INSTANCE, 'InService')])],
      });
      agentsOnline();
      sendsCommands();

      await expect(route(deps, { action: 'redeploy', autoScalingGroupName: name })).rejects.toThrow(
        `group "${name}" is not managed by selfdeploy (managed: web, api)`,
      );
      expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
      expect(awsCallCount()).toBe(0);
    },
  );

  it('skips a named instance of a group called constructor, which is not managed', async () => {
    const { deps } = harness();
    autoScaling.on(DescribeAutoScalingInstancesCommand).resolves({
      AutoScalingInstances: [describedInstance(INSTANCE, 'constructor', 'InService')],
    });
    agentsOnline();
    sendsCommands();

    const result = await route(deps, { action: 'redeploy', instanceIds: [INSTANCE] });

    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(result).toMatchObject({
      result: { skipped: [{ instanceId: INSTANCE, reason: 'group constructor is not managed' }] },
    });
  });

  it("passes the group's health check URL and never migrates", async () => {
    const { deps } = harness({
      config: {
        documentName: 'SelfDeploy',
        waitQueueUrl: WAIT_QUEUE_URL,
        groups: {
          web: { lifecycleHookName: 'selfdeploy-launch', healthCheckUrl: 'http://127.0.0.1:8080/health' },
        },
      },
    });
    autoScaling.on(DescribeAutoScalingGroupsCommand).resolves({
      AutoScalingGroups: [describedGroup('web', [groupInstance(INSTANCE, 'InService')])],
    });
    agentsOnline();
    sendsCommands();

    await route(deps, fixture('console-redeploy-group'));

    expect(ssm).toHaveReceivedCommandWith(SendCommandCommand, {
      Parameters: expect.objectContaining({
        healthCheckUrl: ['http://127.0.0.1:8080/health'],
        migrate: ['false'],
        instanceId: [''],
      }),
    });
  });

  it('says that SendCommand refusing an instance whose agent is online is the tag condition', async () => {
    const { deps } = harness();
    autoScaling.on(DescribeAutoScalingGroupsCommand).resolves({
      AutoScalingGroups: [describedGroup('web', [groupInstance(INSTANCE, 'InService')])],
    });
    agentsOnline();
    ssm.on(SendCommandCommand).rejects(awsError('InvalidInstanceId', 'Instances not in a valid state'));

    const result = await route(deps, fixture('console-redeploy-group'));

    expect(result).toMatchObject({
      result: {
        skipped: [
          {
            instanceId: INSTANCE,
            reason: expect.stringContaining('ssm:resourceTag/aws:autoscaling:groupName'),
          },
        ],
      },
    });
  });
});
