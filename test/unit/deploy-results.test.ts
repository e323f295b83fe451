import { CompleteLifecycleActionCommand } from '@aws-sdk/client-auto-scaling';
import { CreateTagsCommand, DescribeTagsCommand } from '@aws-sdk/client-ec2';
import {
  GetCommandInvocationCommand,
  ParameterAlreadyExists,
  PutParameterCommand,
} from '@aws-sdk/client-ssm';
import type { ConfigInput } from '../../functions/orchestrator/config';
import { handleQueue } from '../../functions/orchestrator/queue';
import {
  type DeployResult,
  parseLastDeploy,
  tagDeployResults,
} from '../../functions/orchestrator/revision-tags';
import { route } from '../../functions/orchestrator/router';
import { BRANCH_SHA, groupRecords, PREVIOUS_SHA, RELEASE_SHA, release } from './group-record';
import {
  activities,
  autoScaling,
  awsError,
  baseConfig,
  COMMAND_ID,
  ec2,
  fixture,
  harness,
  INSTANCE,
  LAUNCHED_AT,
  launchActivity,
  NOW,
  OTHER,
  queueBatch,
  ssm,
} from './support';

const AT = new Date(NOW).toISOString();
/** When the sample commands were requested: the time their results' tags carry. */
const REQUESTED = '2026-11-26T10:01:02.000Z';

/** The sample command status event: `status`, sent with `revision`, run on `instanceId`. */
function commandEvent(status: string, revision: string, instanceId = INSTANCE, commandId = COMMAND_ID) {
  const event = fixture('command-success');
  event.detail.status = status;
  event.detail['command-id'] = commandId;
  event.resources = [`arn:aws:ec2:us-west-2:123456789012:instance/${instanceId}`];
  Object.assign(event.detail.parameters as object, { revision: [revision], instanceId: [instanceId] });
  return event;
}

/** The instances' current waits began before the sample commands were requested; their actions complete. */
function waitsOf(...instanceIds: string[]) {
  activities(...instanceIds.map((id) => launchActivity(id, LAUNCHED_AT)));
  autoScaling.on(CompleteLifecycleActionCommand).resolves({});
}

/** What a run printed: its result line reporting `sha`. */
const runOutput = (sha: string, exitCode = 0) => ({
  ResponseCode: exitCode,
  StandardOutputContent: `deployed\nSELFDEPLOY_RESULT {"status":"${exitCode === 0 ? 'success' : 'failure'}","exitCode":${exitCode},"revision":"${sha}"}`,
});

/** A successful run of RELEASE_SHA on INSTANCE, requested at REQUESTED, changed by `overrides`. */
const deployResult = (overrides: Partial<DeployResult> = {}): DeployResult => ({
  instanceId: INSTANCE,
  result: 'success',
  exitCode: 0,
  sha: RELEASE_SHA,
  requestedAt: new Date(REQUESTED),
  ...overrides,
});

const tagCalls = () => ec2.commandCalls(CreateTagsCommand).map((call) => call.args[0].input);

describe('the tags a finished launch deploy leaves on its instance', () => {
  it('on success: selfdeploy:revision and selfdeploy:last-deploy, after the action is completed', async () => {
    const { deps } = harness();
    waitsOf(INSTANCE);

    const result = await route(deps, commandEvent('Success', RELEASE_SHA));

    expect(result).toMatchObject({
      result: { instances: { [INSTANCE]: { outcome: 'completed', result: 'CONTINUE' } } },
    });
    expect(tagCalls()).toEqual([
      {
        Resources: [INSTANCE],
        Tags: [
          { Key: 'selfdeploy:revision', Value: RELEASE_SHA },
          { Key: 'selfdeploy:last-deploy', Value: `success 0 ${REQUESTED} ${RELEASE_SHA}` },
        ],
      },
    ]);
    // The command's revision was the SHA: the run's output is not read.
    expect(ssm).not.toHaveReceivedCommand(GetCommandInvocationCommand);
  });

  it('on failure: only selfdeploy:last-deploy, with the exit code; the revision tag keeps what is live', async () => {
    const { deps } = harness();
    waitsOf(INSTANCE);
    ssm.on(GetCommandInvocationCommand).resolves(runOutput(RELEASE_SHA, 9));

    await route(deps, commandEvent('Failed', RELEASE_SHA));

    expect(tagCalls()).toEqual([
      {
        Resources: [INSTANCE],
        Tags: [{ Key: 'selfdeploy:last-deploy', Value: `failure 9 ${REQUESTED} ${RELEASE_SHA}` }],
      },
    ]);
  });

  it('tags every instance of one queue batch that shares a result with one CreateTags', async () => {
    const { deps } = harness();
    const third = 'i-0aaaaaaaaaaaaaaaa';
    waitsOf(INSTANCE, OTHER, third);
    ssm.on(GetCommandInvocationCommand).resolves(runOutput(RELEASE_SHA, 9));

    const response = await handleQueue(
      deps,
      queueBatch(
        commandEvent('Success', RELEASE_SHA, INSTANCE, 'aaaaaaaa-0000-4000-8000-000000000001'),
        commandEvent('Success', RELEASE_SHA, OTHER, 'aaaaaaaa-0000-4000-8000-000000000002'),
        commandEvent('Failed', RELEASE_SHA, third, 'aaaaaaaa-0000-4000-8000-000000000003'),
      ),
    );

    expect(response).toEqual({ batchItemFailures: [] });
    expect(tagCalls()).toEqual([
      {
        Resources: [INSTANCE, OTHER],
        Tags: [
          { Key: 'selfdeploy:revision', Value: RELEASE_SHA },
          { Key: 'selfdeploy:last-deploy', Value: `success 0 ${REQUESTED} ${RELEASE_SHA}` },
        ],
      },
      {
        Resources: [third],
        Tags: [{ Key: 'selfdeploy:last-deploy', Value: `failure 9 ${REQUESTED} ${RELEASE_SHA}` }],
      },
    ]);
  });

  it('a CreateTags that fails changes nothing else: the action completed, the metrics counted, a warning logged', async () => {
    const { deps, metrics, logs } = harness();
    waitsOf(INSTANCE);
    ec2.on(CreateTagsCommand).rejects(awsError('UnauthorizedOperation', 'not allowed to tag'));

    const result = await route(deps, commandEvent('Success', RELEASE_SHA));

    expect(result).toMatchObject({
      result: { instances: { [INSTANCE]: { outcome: 'completed', result: 'CONTINUE' } } },
    });
    expect(autoScaling).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
      LifecycleActionResult: 'CONTINUE',
    });
    expect(metrics.map(({ name }) => name)).toEqual(['BootstrapSucceeded', 'BootstrapDuration']);
    expect(logs.warn).toHaveBeenCalledWith(
      'could not tag the deploy result; the lifecycle result stands',
      expect.objectContaining({ instanceIds: [INSTANCE], errorName: 'UnauthorizedOperation' }),
    );
  });

  it('tags the others one by one when a shared CreateTags fails because one instance is gone', async () => {
    const { deps } = harness();
    ec2
      .on(CreateTagsCommand)
      .rejects(awsError('InvalidInstanceID.NotFound', `The instance ID '${OTHER}' does not exist`))
      .on(CreateTagsCommand, { Resources: [INSTANCE] })
      .resolves({});

    await tagDeployResults(deps, [deployResult(), deployResult({ instanceId: OTHER })]);

    expect(tagCalls().map(({ Resources }) => Resources)).toEqual([[INSTANCE, OTHER], [INSTANCE], [OTHER]]);
  });

  it('reads back what it writes', () => {
    expect(parseLastDeploy(`failure 9 ${AT} ${RELEASE_SHA}`)).toEqual({
      result: 'failure',
      exitCode: 9,
      at: AT,
      sha: RELEASE_SHA,
    });
    expect(parseLastDeploy(`failure - ${AT} -`)).toEqual({ result: 'failure', at: AT });
    expect(parseLastDeploy('hand-written')).toBeUndefined();
  });
});

describe('results handled out of order', () => {
  /** The instance's tags as a run requested at `at` left them. */
  function recorded(at: string, result = 'success', sha = RELEASE_SHA) {
    ec2.on(DescribeTagsCommand).resolves({
      Tags: [
        { ResourceId: INSTANCE, ResourceType: 'instance', Key: 'selfdeploy:revision', Value: sha },
        {
          ResourceId: INSTANCE,
          ResourceType: 'instance',
          Key: 'selfdeploy:last-deploy',
          Value: `${result} ${result === 'success' ? 0 : 9} ${at} ${sha}`,
        },
      ],
    });
  }

  it("tags with the run's own request time, not the time the result is handled", async () => {
    const { deps } = harness();
    waitsOf(INSTANCE);

    await route(deps, commandEvent('Success', RELEASE_SHA));

    expect(tagCalls()[0]?.Tags).toContainEqual({
      Key: 'selfdeploy:last-deploy',
      Value: `success 0 ${REQUESTED} ${RELEASE_SHA}`,
    });
  });

  it('a late status event of an older run replaces neither tag written by a newer run', async () => {
    const { deps } = harness();
    waitsOf(INSTANCE);
    // A run requested after the sample command already recorded its result.
    recorded('2026-11-26T10:03:00.000Z', 'failure', PREVIOUS_SHA);

    const result = await route(deps, commandEvent('Success', RELEASE_SHA));

    expect(result).toMatchObject({
      result: { instances: { [INSTANCE]: { outcome: 'completed', result: 'CONTINUE' } } },
    });
    expect(ec2).toHaveReceivedCommandWith(DescribeTagsCommand, {
      Filters: [
        { Name: 'resource-id', Values: [INSTANCE] },
        { Name: 'key', Values: ['selfdeploy:revision', 'selfdeploy:last-deploy'] },
      ],
    });
    expect(ec2).not.toHaveReceivedCommand(CreateTagsCommand);
  });

  it('a newer run replaces the tags of an older one, and a duplicate of the same run writes the same values', async () => {
    for (const at of ['2026-11-26T10:00:00.000Z', REQUESTED]) {
      const { deps } = harness();
      waitsOf(INSTANCE);
      recorded(at, 'failure', PREVIOUS_SHA);

      await route(deps, commandEvent('Success', RELEASE_SHA));

      expect(tagCalls()).toEqual([
        {
          Resources: [INSTANCE],
          Tags: [
            { Key: 'selfdeploy:revision', Value: RELEASE_SHA },
            { Key: 'selfdeploy:last-deploy', Value: `success 0 ${REQUESTED} ${RELEASE_SHA}` },
          ],
        },
      ]);
    }
  });

  it("writes only the newest of one instance's results handled together, whatever their order", async () => {
    const { deps } = harness();

    await tagDeployResults(deps, [
      deployResult(),
      deployResult({
        result: 'failure',
        exitCode: 9,
        sha: PREVIOUS_SHA,
        requestedAt: new Date('2026-11-26T10:00:00.000Z'),
      }),
    ]);

    expect(tagCalls()).toEqual([
      {
        Resources: [INSTANCE],
        Tags: [
          { Key: 'selfdeploy:revision', Value: RELEASE_SHA },
          { Key: 'selfdeploy:last-deploy', Value: `success 0 ${REQUESTED} ${RELEASE_SHA}` },
        ],
      },
    ]);
  });

  it('writes nothing when the current tags cannot be read, or the run time is unknown; a warning says so', async () => {
    const { deps, logs } = harness();
    ec2.on(DescribeTagsCommand).rejects(awsError('UnauthorizedOperation', 'not allowed to describe tags'));

    await tagDeployResults(deps, [deployResult()]);
    ec2.on(DescribeTagsCommand).resolves({ Tags: [] });
    await tagDeployResults(deps, [{ instanceId: OTHER, result: 'success', exitCode: 0, sha: RELEASE_SHA }]);

    expect(ec2).not.toHaveReceivedCommand(CreateTagsCommand);
    expect(logs.warn).toHaveBeenCalledWith(
      'could not tag the deploy result; the lifecycle result stands',
      expect.objectContaining({ instanceIds: [INSTANCE], errorName: 'UnauthorizedOperation' }),
    );
    expect(logs.warn).toHaveBeenCalledWith('not tagging deploy results whose run time is unknown', {
      instanceIds: [OTHER],
    });
  });
});

describe("a group's first release", () => {
  it('is recorded, create-if-absent, from the SHA the first successful branch deploy reports', async () => {
    const { deps } = harness();
    waitsOf(INSTANCE);
    ssm.on(GetCommandInvocationCommand).resolves(runOutput(BRANCH_SHA));
    ssm.on(PutParameterCommand).resolves({ Version: 1 });

    await route(deps, commandEvent('Success', ''));

    expect(ssm).toHaveReceivedCommandWith(GetCommandInvocationCommand, {
      CommandId: COMMAND_ID,
      InstanceId: INSTANCE,
    });
    expect(ssm).toHaveReceivedCommandTimes(PutParameterCommand, 1);
    const put = ssm.commandCalls(PutParameterCommand)[0]?.args[0].input;
    expect(put).toMatchObject({ Name: '/selfdeploy/web/release', Type: 'String', Overwrite: false });
    expect(JSON.parse(put?.Value ?? '')).toEqual({ sha: BRANCH_SHA, changedAt: AT, reason: 'first deploy' });
    expect(tagCalls()[0]?.Tags).toContainEqual({ Key: 'selfdeploy:revision', Value: BRANCH_SHA });
  });

  it('loses quietly to a release recorded first by another deploy', async () => {
    const { deps, logs } = harness();
    waitsOf(INSTANCE);
    ssm.on(GetCommandInvocationCommand).resolves(runOutput(BRANCH_SHA));
    ssm
      .on(PutParameterCommand)
      .rejects(new ParameterAlreadyExists({ message: 'The parameter already exists.', $metadata: {} }));

    const result = await route(deps, commandEvent('Success', ''));

    expect(result).toMatchObject({ result: { instances: { [INSTANCE]: { outcome: 'completed' } } } });
    expect(logs.info).toHaveBeenCalledWith(
      'the first release was recorded by another deploy',
      expect.objectContaining({ group: 'web', sha: BRANCH_SHA }),
    );
    expect(logs.warn).not.toHaveBeenCalled();
  });

  it('is not written when the group already has a release', async () => {
    const { deps } = harness();
    groupRecords({ web: { release: release() } });
    waitsOf(INSTANCE);
    ssm.on(GetCommandInvocationCommand).resolves(runOutput(BRANCH_SHA));

    await route(deps, commandEvent('Success', ''));

    expect(ssm).not.toHaveReceivedCommand(PutParameterCommand);
  });

  it('is one create per group for a queue batch of first deploys', async () => {
    const { deps } = harness();
    waitsOf(INSTANCE, OTHER);
    ssm.on(GetCommandInvocationCommand).resolves(runOutput(BRANCH_SHA));
    ssm.on(PutParameterCommand).resolves({ Version: 1 });

    await handleQueue(
      deps,
      queueBatch(
        commandEvent('Success', '', INSTANCE, 'aaaaaaaa-0000-4000-8000-000000000001'),
        commandEvent('Success', '', OTHER, 'aaaaaaaa-0000-4000-8000-000000000002'),
      ),
    );

    expect(ssm).toHaveReceivedCommandTimes(PutParameterCommand, 1);
    expect(tagCalls()).toHaveLength(1);
  });

  it('is not recorded from a failed run, nor for a group that follows its branch', async () => {
    const followBranch: ConfigInput = {
      ...baseConfig,
      groups: { ...baseConfig.groups, web: { lifecycleHookName: 'selfdeploy-launch', follow: 'branch' } },
    };
    for (const [config, status] of [
      [baseConfig, 'Failed'],
      [followBranch, 'Success'],
    ] as const) {
      const { deps } = harness({ config });
      waitsOf(INSTANCE);
      ssm.on(GetCommandInvocationCommand).resolves(runOutput(BRANCH_SHA, status === 'Failed' ? 9 : 0));

      await route(deps, commandEvent(status, ''));

      expect(ssm).not.toHaveReceivedCommand(PutParameterCommand);
    }
  });
});
