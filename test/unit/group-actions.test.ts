import { DescribeAutoScalingGroupsCommand, DescribeWarmPoolCommand } from '@aws-sdk/client-auto-scaling';
import { DescribeTagsCommand } from '@aws-sdk/client-ec2';
import {
  DeleteParametersCommand,
  DescribeInstanceInformationCommand,
  GetParametersByPathCommand,
  PutParameterCommand,
} from '@aws-sdk/client-ssm';
import { isDrift } from '../../functions/orchestrator/group-actions';
import { route } from '../../functions/orchestrator/router';
import { InvalidInputError } from '../../functions/shared/errors';
import { BRANCH_SHA, groupRecords, PAUSED, parameterReads, RELEASE_SHA, release } from './group-record';
import {
  agentStatuses,
  autoScaling,
  describedGroup,
  ec2,
  fixture,
  groupInstance,
  harness,
  INSTANCE,
  NOW,
  OTHER,
  ssm,
} from './support';

const WARM = 'i-0aaaaaaaaaaaaaaaa';
const NEW = 'i-0bbbbbbbbbbbbbbbb';
const AT = '2026-11-26T09:30:00.000Z';

/** The operator's action on `group` (the console sample for web). */
const act = (name: string, fields: Record<string, unknown> = {}) => ({
  ...fixture(`console-${name}`),
  ...fields,
});

/** Every AWS call made so far, EC2 included. */
const calls = () => ssm.calls().length + autoScaling.calls().length + ec2.calls().length;

describe('status', () => {
  it('shows the release, the pause, and per instance its state, agent, SHA, last deploy and drift, warm pool included', async () => {
    const { deps } = harness();
    groupRecords({ web: { release: release(), paused: PAUSED } });
    autoScaling.on(DescribeAutoScalingGroupsCommand).resolves({
      AutoScalingGroups: [
        describedGroup(
          'web',
          [
            groupInstance(INSTANCE, 'InService'),
            groupInstance(OTHER, 'InService'),
            groupInstance(NEW, 'Pending:Wait'),
          ],
          { WarmPoolConfiguration: { PoolState: 'Stopped' } },
        ),
      ],
    });
    autoScaling.on(DescribeWarmPoolCommand).resolves({ Instances: [groupInstance(WARM, 'Warmed:Stopped')] });
    agentStatuses((id) => ({ [INSTANCE]: 'Online', [OTHER]: 'ConnectionLost', [WARM]: 'Inactive' })[id]);
    ec2.on(DescribeTagsCommand).resolves({
      Tags: [
        { ResourceId: INSTANCE, ResourceType: 'instance', Key: 'selfdeploy:revision', Value: RELEASE_SHA },
        {
          ResourceId: INSTANCE,
          ResourceType: 'instance',
          Key: 'selfdeploy:last-deploy',
          Value: `success 0 ${AT} ${RELEASE_SHA}`,
        },
        { ResourceId: OTHER, ResourceType: 'instance', Key: 'selfdeploy:revision', Value: RELEASE_SHA },
        {
          ResourceId: OTHER,
          ResourceType: 'instance',
          Key: 'selfdeploy:last-deploy',
          Value: `failure 9 ${AT} ${BRANCH_SHA}`,
        },
        { ResourceId: WARM, ResourceType: 'instance', Key: 'selfdeploy:revision', Value: BRANCH_SHA },
      ],
    });

    const result = await route(deps, act('status'));

    expect(result).toEqual({
      kind: 'operator',
      result: {
        action: 'status',
        group: 'web',
        follow: 'release',
        release: release(),
        paused: PAUSED,
        instances: [
          {
            instanceId: INSTANCE,
            lifecycleState: 'InService',
            agent: 'Online',
            sha: RELEASE_SHA,
            lastDeploy: { result: 'success', exitCode: 0, at: AT, sha: RELEASE_SHA },
            drift: false,
          },
          {
            instanceId: OTHER,
            lifecycleState: 'InService',
            agent: 'ConnectionLost',
            sha: RELEASE_SHA,
            lastDeploy: { result: 'failure', exitCode: 9, at: AT, sha: BRANCH_SHA },
            drift: false,
          },
          { instanceId: NEW, lifecycleState: 'Pending:Wait', agent: 'not registered', drift: true },
          {
            instanceId: WARM,
            lifecycleState: 'Warmed:Stopped',
            agent: 'Inactive',
            sha: BRANCH_SHA,
            drift: true,
          },
        ],
      },
    });
    expect(ec2).toHaveReceivedCommandWith(DescribeTagsCommand, {
      Filters: [
        { Name: 'resource-id', Values: [INSTANCE, OTHER, NEW, WARM] },
        { Name: 'key', Values: ['selfdeploy:revision', 'selfdeploy:last-deploy'] },
      ],
    });
    expect(ssm).toHaveReceivedCommandTimes(DescribeInstanceInformationCommand, 1);
  });

  it('answers the last deployment and the last drift repair, each from its own record', async () => {
    const { deps } = harness();
    const ended = (id: string, extra: Record<string, unknown> = {}) => ({
      id,
      group: 'web',
      kind: 'deploy',
      requested: RELEASE_SHA,
      sha: RELEASE_SHA,
      reason: 'deploy of the week',
      requestedAt: AT,
      updatedAt: AT,
      phase: 'failed',
      step: 3,
      commands: [],
      failures: [{ instanceId: OTHER, reason: 'cap deploy failed', exitCode: 14 }],
      ...extra,
    });
    const lastDeployment = ended('d-aaaaaaaaaaaa');
    const lastRepair = ended('d-bbbbbbbbbbbb', {
      reason: 'drift repair',
      driftRepair: [OTHER],
      standby: { instanceIds: [OTHER], stage: 'returning' },
    });
    groupRecords({
      web: { release: release(), 'last-deployment': lastDeployment, 'last-repair': lastRepair },
    });
    autoScaling
      .on(DescribeAutoScalingGroupsCommand)
      .resolves({ AutoScalingGroups: [describedGroup('web', [])] });

    const result = await route(deps, act('status'));

    expect(result).toMatchObject({ kind: 'operator', result: { lastDeployment, lastRepair } });
  });

  it('reads the record fresh, not from the launches’ cache', async () => {
    const { deps } = harness();
    autoScaling
      .on(DescribeAutoScalingGroupsCommand)
      .resolves({ AutoScalingGroups: [describedGroup('web', [])] });

    await route(deps, act('status'));
    await route(deps, act('status'));

    expect(parameterReads()).toBe(2);
  });

  it('has no drift in a group without a release (nothing to drift from); an unknown SHA is drift once there is one', () => {
    expect(isDrift(undefined, undefined)).toBe(false);
    expect(isDrift(undefined, BRANCH_SHA)).toBe(false);
    expect(isDrift(RELEASE_SHA, undefined)).toBe(true);
    expect(isDrift(RELEASE_SHA, BRANCH_SHA)).toBe(true);
    expect(isDrift(RELEASE_SHA, RELEASE_SHA)).toBe(false);
  });
});

describe('release', () => {
  it("answers the group's release record, read fresh", async () => {
    const { deps } = harness();
    groupRecords({ web: { release: release() } });

    const result = await route(deps, act('release'));

    expect(result).toEqual({
      kind: 'operator',
      result: { action: 'release', group: 'web', release: release() },
    });
    expect(ssm).toHaveReceivedCommandWith(GetParametersByPathCommand, { Path: '/selfdeploy/web' });
  });

  it('answers without one when the group has none yet', async () => {
    const { deps } = harness();

    const result = await route(deps, act('release'));

    expect(result).toEqual({ kind: 'operator', result: { action: 'release', group: 'web' } });
  });
});

describe('pause and resume', () => {
  it('pause writes the paused record with its time and reason and answers a summary naming the release', async () => {
    const { deps } = harness();
    groupRecords({ web: { release: release() } });
    ssm.on(PutParameterCommand).resolves({ Version: 1 });

    const result = await route(deps, act('pause'));

    const put = ssm.commandCalls(PutParameterCommand)[0]?.args[0].input;
    expect(put).toMatchObject({ Name: '/selfdeploy/web/paused', Overwrite: true });
    expect(JSON.parse(put?.Value ?? '')).toEqual({
      since: new Date(NOW).toISOString(),
      reason: 'deploys fail on a broken gem mirror; scale-outs must not wait',
    });
    expect(result).toMatchObject({ result: { action: 'pause', group: 'web', paused: true } });
    const { summary } = (result as { result: { summary: string } }).result;
    expect(summary).toContain("without a deploy and run the image's code until resume");
    expect(summary).toContain(RELEASE_SHA);
  });

  it('pausing a paused group keeps when it began and takes the new reason', async () => {
    const { deps } = harness();
    groupRecords({ web: { paused: PAUSED } });
    ssm.on(PutParameterCommand).resolves({ Version: 2 });

    await route(deps, act('pause', { reason: 'still broken' }));

    const put = ssm.commandCalls(PutParameterCommand)[0]?.args[0].input;
    expect(JSON.parse(put?.Value ?? '')).toEqual({ since: PAUSED.since, reason: 'still broken' });
  });

  it('resume deletes the paused record and says what launches deploy again', async () => {
    const { deps } = harness();
    groupRecords({ web: { release: release(), paused: PAUSED } });
    ssm.on(DeleteParametersCommand).resolves({ DeletedParameters: ['/selfdeploy/web/paused'] });

    const result = await route(deps, act('resume'));

    expect(ssm).toHaveReceivedCommandWith(DeleteParametersCommand, { Names: ['/selfdeploy/web/paused'] });
    expect(result).toMatchObject({ result: { action: 'resume', group: 'web', paused: false } });
    expect((result as { result: { summary: string } }).result.summary).toContain(
      `deploy the release ${RELEASE_SHA}`,
    );
  });

  it('resume of a group that is not paused deletes nothing', async () => {
    const { deps } = harness();

    const result = await route(deps, act('resume'));

    expect(ssm).not.toHaveReceivedCommand(DeleteParametersCommand);
    expect((result as { result: { summary: string } }).result.summary).toContain('was not paused');
  });
});

describe('an action on a group selfdeploy does not manage', () => {
  it.each(['status', 'release', 'pause', 'resume'])(
    '%s: one line naming it and the managed groups, and no AWS call',
    async (name) => {
      const { deps } = harness();

      const attempt = route(deps, act(name, { group: 'billing' }));

      await expect(attempt).rejects.toThrow(InvalidInputError);
      await expect(attempt).rejects.toThrow(
        /^group "billing" is not managed by selfdeploy \(managed: web, api\)$/,
      );
      expect(calls()).toBe(0);
    },
  );
});
