import {
  CompleteLifecycleActionCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeLifecycleHooksCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  DescribeInstanceInformationCommand,
  GetParametersByPathCommand,
  ListCommandsCommand,
  SendCommandCommand,
} from '@aws-sdk/client-ssm';
import { waitMessage } from '../../functions/orchestrator/agent-wait';
import type { ConfigInput } from '../../functions/orchestrator/config';
import { launchRevision } from '../../functions/orchestrator/launch-revision';
import { handleQueue } from '../../functions/orchestrator/queue';
import { RELEASE_CACHE_MS } from '../../functions/orchestrator/release-store';
import { route } from '../../functions/orchestrator/router';
import { groupRecords, PAUSED, parameterReads, RELEASE_SHA, release } from './group-record';
import {
  agentsOnline,
  agentWait,
  autoScaling,
  awsError,
  baseConfig,
  describedGroup,
  fixture,
  groupInstance,
  harness,
  INSTANCE,
  instanceId,
  launchEvent,
  queueBatch,
  ssm,
  TOKEN,
  tokenOf,
} from './support';

const NEW_COMMAND = 'aaaaaaaa-1111-2222-3333-444444444444';
const followBranch: ConfigInput = {
  ...baseConfig,
  groups: { ...baseConfig.groups, web: { lifecycleHookName: 'selfdeploy-launch', follow: 'branch' } },
};

/** The agent is online, no deploy was sent for this wait yet, and SendCommand takes one. */
function readyToSend() {
  agentsOnline(INSTANCE);
  ssm.on(ListCommandsCommand).resolves({ Commands: [] });
  ssm.on(SendCommandCommand).resolves({ Command: { CommandId: NEW_COMMAND } });
}

/** The sample launch event, its hook's NotificationMetadata set to `metadata`. */
function launchWithMetadata(metadata?: string) {
  const event = fixture('launch');
  if (metadata !== undefined) event.detail.NotificationMetadata = metadata;
  return event;
}

const sentRevision = () => ssm.commandCalls(SendCommandCommand)[0]?.args[0].input.Parameters?.revision;

/** A queue batch of `count` launch events, one instance each. */
const launchBatch = (count: number) =>
  queueBatch(...Array.from({ length: count }, (_, n) => launchEvent(instanceId(n + 1), tokenOf(n + 1))));

describe('what a launch deploys', () => {
  it("sends the release's exact SHA as the revision, so a launch never deploys a moving branch", async () => {
    const { deps } = harness();
    groupRecords({ web: { release: release() } });
    readyToSend();

    const result = await route(deps, fixture('launch'));

    expect(result).toMatchObject({ result: { outcome: 'started', commandId: NEW_COMMAND } });
    expect(sentRevision()).toEqual([RELEASE_SHA]);
    expect(ssm).toHaveReceivedCommandWith(GetParametersByPathCommand, { Path: '/selfdeploy/web' });
  });

  it("deploys the release over a revision override in the hook's metadata, and says so", async () => {
    const { deps, logs } = harness();
    groupRecords({ web: { release: release() } });
    readyToSend();

    await route(deps, launchWithMetadata('{"revision":"hotfix-branch"}'));

    expect(sentRevision()).toEqual([RELEASE_SHA]);
    expect(logs.warn).toHaveBeenCalledWith(
      "the hook's revision override is ignored: the group deploys its release",
      expect.objectContaining({ override: 'hotfix-branch', release: RELEASE_SHA }),
    );
  });

  it('deploys the branch head (an empty revision) while the group has no release yet', async () => {
    const { deps } = harness();
    readyToSend();

    await route(deps, fixture('launch'));

    expect(sentRevision()).toEqual(['']);
  });

  it('deploys the branch head for a group that follows its branch, release or not', async () => {
    const { deps } = harness({ config: followBranch });
    groupRecords({ web: { release: release() } });
    readyToSend();

    await route(deps, fixture('launch'));

    expect(sentRevision()).toEqual(['']);
  });

  it.each([
    ['release', 'a release', undefined, RELEASE_SHA, 'release'],
    ['release', 'a release', 'v1.2', RELEASE_SHA, 'release'],
    ['release', 'no release', 'v1.2', 'v1.2', 'override'],
    ['release', 'no release', undefined, '', 'branch'],
    ['branch', 'a release', 'v1.2', 'v1.2', 'override'],
    ['branch', 'a release', undefined, '', 'branch'],
  ] as const)(
    'follow %s with %s and override %s deploys %j (from the %s)',
    (follow, has, override, revision, source) => {
      const record = has === 'a release' ? { release: release() } : {};
      const overrides = override === undefined ? undefined : { revision: override };
      expect(launchRevision({ follow }, record, overrides)).toMatchObject({ revision, source });
    },
  );

  it('costs one Parameter Store read for 100 launches of one group in one queue batch', async () => {
    const { deps } = harness();
    groupRecords({ web: { release: release() } });
    ssm.on(DescribeInstanceInformationCommand).callsFake((input) => ({
      InstanceInformationList: (input.Filters?.[0]?.Values ?? []).map((InstanceId: string) => ({
        InstanceId,
        PingStatus: 'Online',
      })),
    }));
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: NEW_COMMAND } });

    const response = await handleQueue(deps, launchBatch(100));

    expect(response).toEqual({ batchItemFailures: [] });
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(100);
    expect(
      ssm
        .commandCalls(SendCommandCommand)
        .every((call) => call.args[0].input.Parameters?.revision?.[0] === RELEASE_SHA),
    ).toBe(true);
    expect(parameterReads()).toBe(1);
  });

  it('reads the record again once the cache has aged, so a new release reaches the next launches', async () => {
    const { deps, sleeps } = harness();
    groupRecords({ web: { release: release() } });
    readyToSend();
    await route(deps, fixture('launch'));
    groupRecords({ web: { release: release('3333333333333333333333333333333333333333') } });

    await deps.clock.sleep(RELEASE_CACHE_MS);
    await route(deps, fixture('launch'));

    expect(sleeps).toEqual([RELEASE_CACHE_MS]);
    expect(ssm.commandCalls(SendCommandCommand)[1]?.args[0].input.Parameters?.revision).toEqual([
      '3333333333333333333333333333333333333333',
    ]);
  });

  it('sends nothing when the record cannot be read: the launch fails and is retried, never deployed off-release', async () => {
    const { deps } = harness();
    ssm.on(GetParametersByPathCommand).rejects(awsError('InternalServerError', 'Parameter Store is down'));
    readyToSend();

    await expect(route(deps, fixture('launch'))).rejects.toThrow('Parameter Store is down');

    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(autoScaling).not.toHaveReceivedCommand(CompleteLifecycleActionCommand);
  });
});

describe('a paused group', () => {
  it('lets a launch into service without a deploy: CONTINUE, no SendCommand, logged and counted', async () => {
    const { deps, metrics, logs } = harness();
    groupRecords({ web: { release: release(), paused: PAUSED } });
    readyToSend();
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});

    const result = await route(deps, fixture('launch'));

    expect(result).toMatchObject({
      result: {
        outcome: 'continued-without-deploy',
        reason: 'group paused since 2026-11-26T10:00:00.000Z: deploys broken, incident 42',
      },
    });
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    // Not even the agent is looked at: a broken agent is one reason to pause.
    expect(ssm).not.toHaveReceivedCommand(DescribeInstanceInformationCommand);
    expect(autoScaling).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
      AutoScalingGroupName: 'web',
      LifecycleHookName: 'selfdeploy-launch',
      LifecycleActionToken: TOKEN,
      LifecycleActionResult: 'CONTINUE',
    });
    expect(metrics).toEqual([{ name: 'LaunchedWithoutDeploy', group: 'web', value: 1, unit: 'Count' }]);
    expect(logs.warn).toHaveBeenCalledWith(
      'launched without a deploy: the group is paused',
      expect.objectContaining({ instanceId: INSTANCE, group: 'web' }),
    );
  });

  it('lets an agent wait queued before the pause through the same way', async () => {
    const { deps, metrics } = harness();
    groupRecords({ web: { paused: PAUSED } });
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});
    const response = await handleQueue(deps, queueBatch(waitMessage(agentWait())));

    expect(response).toEqual({ batchItemFailures: [] });
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(autoScaling).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
      LifecycleActionResult: 'CONTINUE',
    });
    expect(metrics).toEqual([{ name: 'LaunchedWithoutDeploy', group: 'web', value: 1, unit: 'Count' }]);
  });

  it("lets the reconciler's instance with no command for its wait through instead of starting one", async () => {
    const { deps, metrics } = harness();
    groupRecords({ web: { paused: PAUSED } });
    autoScaling.on(DescribeAutoScalingGroupsCommand).resolves({
      AutoScalingGroups: [
        describedGroup('web', [groupInstance(INSTANCE, 'Pending:Wait')]),
        describedGroup('api', []),
      ],
    });
    autoScaling.on(DescribeLifecycleHooksCommand).resolves({
      LifecycleHooks: [{ AutoScalingGroupName: 'web', LifecycleHookName: 'selfdeploy-launch' }],
    });
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});
    readyToSend();

    const result = await route(deps, fixture('scheduled'));

    expect(result).toMatchObject({
      result: { groups: { web: { stuck: 0, instances: { [INSTANCE]: 'continued-without-deploy' } } } },
    });
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
    expect(autoScaling).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
      InstanceId: INSTANCE,
      LifecycleActionResult: 'CONTINUE',
    });
    expect(metrics).toContainEqual({ name: 'LaunchedWithoutDeploy', group: 'web', value: 1, unit: 'Count' });
  });
});
