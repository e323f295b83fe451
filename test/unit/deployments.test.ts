import { CreateTagsCommand } from '@aws-sdk/client-ec2';
import {
  GetCommandInvocationCommand,
  ParameterAlreadyExists,
  PutParameterCommand,
  SendCommandCommand,
} from '@aws-sdk/client-ssm';
import { advanceDeployment } from '../../functions/orchestrator/deployments';
import { forgetReleaseCache } from '../../functions/orchestrator/release-store';
import { route } from '../../functions/orchestrator/router';
import type { Deployment } from '../../functions/shared/operator-actions';
import { NEW_SHA, OLD_SHA, operate, type World, world } from './deployments-world';
import { PREVIOUS_SHA } from './group-record';
import { awsCallCount, ec2, fixture, instanceId, ssm } from './support';

const release = (sha: string, previous?: string) => ({
  sha,
  ...(previous && { previous }),
  changedAt: '2026-11-26T09:00:00.000Z',
  reason: 'first deploy',
});

/** Finishes a command and delivers its status event, as EventBridge would. */
async function finished(
  w: World,
  commandId: string,
  sha: string,
  failing?: Record<string, { exitCode: number; reason: string }>,
) {
  w.finish(commandId, sha, failing);
  const command = w.commands.find((candidate) => candidate.commandId === commandId);
  if (!command) throw new Error(`no command ${commandId}`);
  return route(w.deps, w.statusEvent(command));
}

const only = <T>(items: readonly T[]): T => {
  expect(items).toHaveLength(1);
  return items[0] as T;
};

describe('deploy', () => {
  it('starts on one canary whose agent is online, preferring one that runs the release, and answers at once', async () => {
    const w = world(3);
    w.put('release', release(OLD_SHA));
    w.offline = new Set([instanceId(1)]);
    w.tags = new Map([
      [instanceId(2), PREVIOUS_SHA],
      [instanceId(3), OLD_SHA],
    ]);

    const answer = await operate(w, {
      action: 'deploy',
      group: 'web',
      revision: 'v2.5.0',
      reason: 'new search',
    });

    const canary = only(w.sentFor('canary'));
    expect(canary.instanceIds).toEqual([instanceId(3)]);
    expect(answer).toMatchObject({
      action: 'deploy',
      group: 'web',
      deploymentId: expect.stringMatching(/^d-[a-z2-7]{12}$/),
      phase: 'canary',
      canary: instanceId(3),
      summary: expect.stringContaining(instanceId(3)),
    });
    const { deploymentId } = answer as { deploymentId: string };
    expect(canary.comment).toBe(`selfdeploy deploy ${deploymentId} canary`);
    expect(canary.parameters).toMatchObject({
      revision: ['v2.5.0'],
      migrate: ['true'],
      autoScalingGroupName: ['web'],
      lifecycleHookName: [''],
    });
    expect(w.record('deployment')).toMatchObject({
      id: deploymentId,
      phase: 'canary',
      step: 0,
      baseline: OLD_SHA,
      reason: 'new search',
      commands: [{ commandId: canary.commandId, phase: 'canary' }],
    });
    // The lock is created, never overwritten.
    expect(ssm).toHaveReceivedNthSpecificCommandWith(1, PutParameterCommand, {
      Name: '/selfdeploy/web/deployment',
      Overwrite: false,
    });
  });

  it('refuses a second deploy while one runs, naming the running deployment, and sends nothing', async () => {
    const w = world(2);
    const first = (await operate(w, { action: 'deploy', group: 'web', revision: 'main' })) as {
      deploymentId: string;
    };

    await expect(operate(w, { action: 'deploy', group: 'web', revision: 'v3' })).rejects.toMatchObject({
      name: 'DeploymentInProgressError',
      deploymentId: first.deploymentId,
      message: expect.stringContaining(`deployment ${first.deploymentId} in flight`),
    });
    expect(w.commands).toHaveLength(1);
  });

  it('refuses when another execution took the lock first (create-if-absent lost), naming its deployment', async () => {
    const w = world(2);
    const running = {
      id: 'd-aaaaaaaaaaaa',
      group: 'web',
      kind: 'deploy',
      requested: 'main',
      phase: 'canary',
    };
    // The lock appears between the read of the record and the create.
    ssm.on(PutParameterCommand).callsFake(({ Name }) => {
      w.put('deployment', running);
      throw new ParameterAlreadyExists({ message: `${Name} exists`, $metadata: {} });
    });

    await expect(operate(w, { action: 'deploy', group: 'web', revision: 'v3' })).rejects.toMatchObject({
      name: 'DeploymentInProgressError',
      deploymentId: 'd-aaaaaaaaaaaa',
    });
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
  });

  it('refuses a group it does not manage in one line, before any AWS call', async () => {
    const w = world(1);

    await expect(operate(w, { action: 'deploy', group: 'batch', revision: 'main' })).rejects.toThrow(
      'group batch is not managed by selfdeploy (managed: web, api)',
    );
    expect(awsCallCount()).toBe(0);
  });

  it('refuses while the group is paused, saying why, and writes nothing', async () => {
    const w = world(2);
    w.put('paused', { since: '2026-11-26T09:30:00.000Z', reason: 'selfdeploy broken' });

    await expect(operate(w, { action: 'deploy', group: 'web', revision: 'main' })).rejects.toThrow(
      'group web is paused since 2026-11-26T09:30:00.000Z (selfdeploy broken): resume it before a deploy',
    );
    expect(ssm).not.toHaveReceivedCommand(PutParameterCommand);
    expect(ssm).not.toHaveReceivedCommand(SendCommandCommand);
  });

  it('promotes a full SHA at once when the group has no InService instance: nothing to deploy to', async () => {
    const w = world(0);
    w.put('release', release(OLD_SHA));

    const answer = await operate(w, { action: 'deploy', group: 'web', revision: NEW_SHA });

    expect(answer).toMatchObject({ phase: 'promoted', sha: NEW_SHA });
    expect(w.record('release')).toMatchObject({ sha: NEW_SHA, previous: OLD_SHA });
    expect(w.record('deployment')).toBeUndefined();
    expect(w.record('last-deployment')).toMatchObject({ phase: 'promoted', sha: NEW_SHA });
  });

  it('refuses a tag or branch when no instance can resolve it, asking for a SHA', async () => {
    const w = world(0);

    await expect(operate(w, { action: 'deploy', group: 'web', revision: 'v2' })).rejects.toThrow(
      'group web has no InService instance with an online SSM agent to resolve "v2" to a commit (0 InService): deploy a full 40-character SHA instead',
    );
    expect(w.record('deployment')).toBeUndefined();
  });

  it('frees the lock when the canary command cannot be sent', async () => {
    const w = world(1);
    ssm
      .on(SendCommandCommand)
      .rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));

    await expect(operate(w, { action: 'deploy', group: 'web', revision: 'main' })).rejects.toThrow(
      'Rate exceeded',
    );
    expect(w.record('deployment')).toBeUndefined();
  });
});

describe('a deployment moving on', () => {
  async function standbyDeployStarted(w: World, revision = 'v2.5.0') {
    const answer = (await operate(w, { action: 'deploy', group: 'web', revision })) as {
      deploymentId: string;
    };
    return { id: answer.deploymentId, canary: only(w.sentFor('canary')) };
  }

  it("sends the rest the canary's SHA, without migrations, in batches of at most 50 with the rate controls", async () => {
    const w = world(120);
    w.put('release', release(OLD_SHA));
    const { id, canary } = await standbyDeployStarted(w);

    await finished(w, canary.commandId, NEW_SHA);

    const rest = w.sentFor('rest');
    expect(rest.map((command) => command.instanceIds.length)).toEqual([50, 50, 19]);
    expect(new Set(rest.flatMap((command) => command.instanceIds))).toEqual(
      new Set(w.inService.filter((id) => id !== canary.instanceIds[0])),
    );
    for (const command of rest) {
      expect(command).toMatchObject({
        comment: `selfdeploy deploy ${id} rest`,
        maxConcurrency: '25%',
        maxErrors: '0',
        parameters: expect.objectContaining({ revision: [NEW_SHA], migrate: ['false'] }),
      });
    }
    expect(w.record('deployment')).toMatchObject({ phase: 'rest', sha: NEW_SHA, step: 1 });
  });

  it('then sends instances that joined meanwhile, then promotes: release = SHA, previous = the old release', async () => {
    const w = world(3);
    w.put('release', release(OLD_SHA, PREVIOUS_SHA));
    const { id, canary } = await standbyDeployStarted(w);
    await finished(w, canary.commandId, NEW_SHA);
    const rest = only(w.sentFor('rest'));
    w.inService = [...w.inService, instanceId(9)]; // launched during the deploy, at the old release

    await finished(w, rest.commandId, NEW_SHA);

    const joiners = only(w.sentFor('joiners'));
    expect(joiners.instanceIds).toEqual([instanceId(9)]);
    expect(joiners.parameters).toMatchObject({ revision: [NEW_SHA], migrate: ['false'] });
    expect(w.record('release')).toMatchObject({ sha: OLD_SHA });

    await finished(w, joiners.commandId, NEW_SHA);

    expect(w.record('release')).toEqual({
      sha: NEW_SHA,
      previous: OLD_SHA,
      changedAt: expect.any(String),
      reason: 'deploy v2.5.0',
      deploymentId: id,
    });
    expect(w.record('last-deployment')).toMatchObject({ id, phase: 'promoted', sha: NEW_SHA });
    expect([...w.parameters.keys()].sort()).toEqual([
      '/selfdeploy/web/last-deployment',
      '/selfdeploy/web/release',
    ]);
    expect(w.metrics).toContainEqual({ name: 'DeploySucceeded', group: 'web', value: 1, unit: 'Count' });
    // Migrations ran on the canary only.
    expect(w.commands.filter((command) => command.parameters.migrate?.[0] === 'true')).toEqual([canary]);
  });

  it('promotes right after the canary when the group has no other instance', async () => {
    const w = world(1);
    const { canary } = await standbyDeployStarted(w);

    await finished(w, canary.commandId, NEW_SHA);

    expect(w.sentFor('rest')).toEqual([]);
    expect(w.record('release')).toMatchObject({ sha: NEW_SHA, reason: 'deploy v2.5.0' });
    expect(w.record('release')).not.toHaveProperty('previous');
  });

  it('stops when the canary fails: release unchanged, the canary sent the release back, the failure recorded and logged', async () => {
    const w = world(3);
    w.put('release', release(OLD_SHA));
    const { id, canary } = await standbyDeployStarted(w, 'broken-branch');
    const canaryId = canary.instanceIds[0] as string;

    await finished(w, canary.commandId, NEW_SHA, {
      [canaryId]: { exitCode: 9, reason: 'deploy command exited with 1' },
    });

    expect(w.sentFor('rest')).toEqual([]);
    expect(w.record('release')).toMatchObject({ sha: OLD_SHA });
    const restore = only(w.sentFor('restore'));
    expect(restore.instanceIds).toEqual([canaryId]);
    expect(restore.parameters).toMatchObject({ revision: [OLD_SHA], migrate: ['false'] });
    expect(w.record('deployment')).toBeUndefined();
    const last = w.record('last-deployment') as Deployment;
    expect(last).toMatchObject({ id, phase: 'failed' });
    expect(last.failures).toEqual([
      {
        instanceId: canaryId,
        exitCode: 9,
        reason: 'deploy command exited with 1',
        commandId: canary.commandId,
      },
    ]);
    expect(w.metrics).toContainEqual({ name: 'DeployFailed', group: 'web', value: 1, unit: 'Count' });
    expect(w.logs.error).toHaveBeenCalledWith(
      'deploy failed',
      expect.objectContaining({
        group: 'web',
        deploymentId: id,
        instanceId: canaryId,
        exitCode: 9,
        reason: 'deploy command exited with 1',
        outputTail: expect.stringContaining('SELFDEPLOY_RESULT'),
      }),
    );
  });

  it('stops when one of the rest fails: release unchanged, only the failed instance sent the release back', async () => {
    const w = world(4);
    w.put('release', release(OLD_SHA));
    const { canary } = await standbyDeployStarted(w);
    await finished(w, canary.commandId, NEW_SHA);
    const rest = only(w.sentFor('rest'));
    const bad = rest.instanceIds[1] as string;

    await finished(w, rest.commandId, NEW_SHA, { [bad]: { exitCode: 12, reason: 'health check failed' } });

    expect(w.sentFor('joiners')).toEqual([]);
    expect(w.record('release')).toMatchObject({ sha: OLD_SHA });
    expect(only(w.sentFor('restore'))).toMatchObject({
      instanceIds: [bad],
      parameters: expect.objectContaining({ revision: [OLD_SHA] }),
    });
    expect((w.record('last-deployment') as Deployment).failures).toEqual([
      expect.objectContaining({ instanceId: bad, exitCode: 12, reason: 'health check failed' }),
    ]);
  });

  it('sends nothing back when there was no release before the failed deployment', async () => {
    const w = world(2);
    const { canary } = await standbyDeployStarted(w);

    await finished(w, canary.commandId, NEW_SHA, {
      [canary.instanceIds[0] as string]: { exitCode: 7, reason: 'revision not found' },
    });

    expect(w.sentFor('restore')).toEqual([]);
    expect(w.record('release')).toBeUndefined();
    expect(w.record('last-deployment')).toMatchObject({ phase: 'failed' });
  });

  it('moves on once for a duplicate status event', async () => {
    const w = world(3);
    const { canary } = await standbyDeployStarted(w);
    w.finish(canary.commandId, NEW_SHA);

    await route(w.deps, w.statusEvent(canary));
    await route(w.deps, w.statusEvent(canary));

    expect(w.sentFor('rest')).toHaveLength(1);
    expect(w.record('deployment')).toMatchObject({ phase: 'rest', step: 1 });
  });

  it('moves on once when two executions advance it at the same time', async () => {
    const w = world(3);
    const { canary } = await standbyDeployStarted(w);
    w.finish(canary.commandId, NEW_SHA);

    const outcomes = await Promise.all([advanceDeployment(w.deps, 'web'), advanceDeployment(w.deps, 'web')]);

    expect(outcomes.map((outcome) => outcome.outcome).sort()).toEqual(['advanced', 'claimed-elsewhere']);
    expect(w.sentFor('rest')).toHaveLength(1);
  });

  it('waits while a phase still runs', async () => {
    const w = world(3);
    const { id } = await standbyDeployStarted(w);

    expect(await advanceDeployment(w.deps, 'web')).toEqual({ outcome: 'running', deploymentId: id });
    expect(w.sentFor('rest')).toEqual([]);
  });

  it('outlives the invocation that started it: the reconcile schedule moves it on from Parameter Store alone, its status events lost', async () => {
    const w = world(3);
    w.put('release', release(OLD_SHA));
    const { canary } = await standbyDeployStarted(w);
    w.finish(canary.commandId, NEW_SHA); // its status event is lost
    w.advance(20 * 60 * 1000);
    forgetReleaseCache(); // a new execution environment: nothing in memory

    await route(w.deps, fixture('scheduled'));
    const rest = only(w.sentFor('rest'));
    w.finish(rest.commandId, NEW_SHA);
    w.advance(20 * 60 * 1000);
    forgetReleaseCache();
    const summary = await route(w.deps, fixture('scheduled'));

    expect(summary).toMatchObject({
      result: { releases: { web: { deployment: { outcome: 'advanced', phase: 'promoted' } } } },
    });
    expect(w.record('release')).toMatchObject({ sha: NEW_SHA, previous: OLD_SHA });
  });

  it('takes over a transition whose claimer died before recording it', async () => {
    const w = world(3);
    const { id, canary } = await standbyDeployStarted(w);
    w.finish(canary.commandId, NEW_SHA);
    // An execution claimed transition 1 and stopped (Lambda timeout) before sending or writing.
    w.put('step-1', { deploymentId: id, at: 'then' });

    expect(await advanceDeployment(w.deps, 'web')).toEqual({
      outcome: 'claimed-elsewhere',
      deploymentId: id,
    });
    w.advance(17 * 60 * 1000);
    expect(await advanceDeployment(w.deps, 'web')).toMatchObject({ outcome: 'advanced', phase: 'rest' });
    expect(w.record('deployment')).toMatchObject({ phase: 'rest', step: 2 });
  });

  it('finds the canary command by its Comment when the deploy action stopped before recording it', async () => {
    const w = world(2);
    const { id, canary } = await standbyDeployStarted(w);
    const recorded = w.record('deployment') as Deployment;
    w.put('deployment', { ...recorded, commands: [] });
    w.finish(canary.commandId, NEW_SHA);

    expect(await advanceDeployment(w.deps, 'web')).toEqual({ outcome: 'running', deploymentId: id });
    w.advance(3 * 60 * 1000);
    expect(await advanceDeployment(w.deps, 'web')).toMatchObject({ outcome: 'advanced', phase: 'rest' });
  });
});

describe('rollback', () => {
  it("deploys the release's previous SHA canary-first and promotes it, keeping the rolled-back SHA as previous", async () => {
    const w = world(2);
    w.put('release', release(NEW_SHA, OLD_SHA));

    const answer = await operate(w, { action: 'rollback', group: 'web', reason: 'errors up' });

    expect(answer).toMatchObject({ action: 'rollback', phase: 'canary', sha: OLD_SHA });
    const canary = only(w.sentFor('canary'));
    expect(canary.parameters).toMatchObject({ revision: [OLD_SHA], migrate: ['true'] });
    await finished(w, canary.commandId, OLD_SHA);
    await finished(w, only(w.sentFor('rest')).commandId, OLD_SHA);

    expect(w.record('release')).toMatchObject({ sha: OLD_SHA, previous: NEW_SHA, reason: 'errors up' });
    expect(w.record('last-deployment')).toMatchObject({ kind: 'rollback', phase: 'promoted' });
  });

  it('refuses when there is no previous release, in one line, and writes nothing', async () => {
    const w = world(2);
    w.put('release', release(NEW_SHA));

    await expect(operate(w, { action: 'rollback', group: 'web' })).rejects.toThrow(
      `group web has nothing to roll back to: release ${NEW_SHA} has no previous release`,
    );
    expect(ssm).not.toHaveReceivedCommand(PutParameterCommand);
  });
});

describe('logs', () => {
  it("shows the output tails of a deployment's runs, newest command first", async () => {
    const w = world(2);
    const answer = (await operate(w, { action: 'deploy', group: 'web', revision: 'main' })) as {
      deploymentId: string;
    };
    const canary = only(w.sentFor('canary'));
    await finished(w, canary.commandId, NEW_SHA);
    const rest = only(w.sentFor('rest'));
    w.finish(rest.commandId, NEW_SHA, {
      [rest.instanceIds[0] as string]: { exitCode: 9, reason: 'cap failed' },
    });

    const logs = await operate(w, { action: 'logs', group: 'web', deploymentId: answer.deploymentId });

    expect(logs).toMatchObject({
      action: 'logs',
      group: 'web',
      runs: [
        { instanceId: rest.instanceIds[0], commandId: rest.commandId, status: 'Failed' },
        { instanceId: canary.instanceIds[0], commandId: canary.commandId, status: 'Success' },
      ],
    });
    const runs = logs.action === 'logs' ? logs.runs : [];
    expect(runs[0]?.outputTail).toContain('"reason":"cap failed"');
    expect(runs[0]?.outputTail).toContain('cap aborted!');
  });

  it("keeps the result line in a run's tail however long its standard error", async () => {
    const w = world(1);
    await operate(w, { action: 'deploy', group: 'web', revision: 'main' });
    const canary = only(w.sentFor('canary'));
    w.finish(canary.commandId, NEW_SHA, { [instanceId(1)]: { exitCode: 9, reason: 'cap failed' } });
    ssm.on(GetCommandInvocationCommand).resolves({
      Status: 'Failed',
      ResponseCode: 9,
      StandardOutputContent: `${'x'.repeat(30_000)}\nSELFDEPLOY_RESULT {"exitCode":9}\n`,
      StandardErrorContent: 'e'.repeat(8_000),
    });

    const logs = await operate(w, { action: 'logs', group: 'web', instanceId: instanceId(1) });

    const tail = logs.action === 'logs' ? (logs.runs[0]?.outputTail ?? '') : '';
    expect(tail).toContain('SELFDEPLOY_RESULT {"exitCode":9}');
    expect(tail.length).toBeLessThanOrEqual(2_010);
  });

  it("shows an instance's newest runs, and refuses an instance of another group", async () => {
    const w = world(1);
    await operate(w, { action: 'deploy', group: 'web', revision: 'main' });
    w.finish(only(w.sentFor('canary')).commandId, NEW_SHA);

    const logs = await operate(w, { action: 'logs', group: 'web', instanceId: instanceId(1) });
    expect(logs).toMatchObject({ runs: [{ instanceId: instanceId(1), status: 'Success' }] });

    await expect(operate(w, { action: 'logs', group: 'web', instanceId: instanceId(7) })).rejects.toThrow(
      `instance ${instanceId(7)} is not in group web`,
    );
  });

  it('refuses an unknown deployment id in one line', async () => {
    const w = world(1);

    await expect(
      operate(w, { action: 'logs', group: 'web', deploymentId: 'd-bbbbbbbbbbbb' }),
    ).rejects.toThrow('deployment d-bbbbbbbbbbbb is neither in flight nor the last one of group web');
  });
});

describe('reconcile and drift', () => {
  it('sends the release to InService instances whose revision tag differs, and to no other', async () => {
    const w = world(4);
    w.put('release', release(NEW_SHA));
    w.tags = new Map([
      [instanceId(1), NEW_SHA],
      [instanceId(2), OLD_SHA],
      [instanceId(3), OLD_SHA],
      // instance 4 has no tag: unknown, left alone
    ]);
    w.offline = new Set([instanceId(3)]);

    const summary = await route(w.deps, fixture('scheduled'));

    const sent = only(w.commands);
    expect(sent).toMatchObject({
      instanceIds: [instanceId(2)],
      comment: 'selfdeploy drift',
      parameters: expect.objectContaining({
        revision: [NEW_SHA],
        migrate: ['false'],
        autoScalingGroupName: ['web'],
      }),
    });
    expect(summary).toMatchObject({ result: { releases: { web: { drifted: 2, sent: [instanceId(2)] } } } });
  });

  it('leaves a drifted instance alone while it deploys, and for an hour after a repair to the same SHA', async () => {
    const w = world(1);
    w.put('release', release(NEW_SHA));
    w.tags = new Map([[instanceId(1), OLD_SHA]]);

    await route(w.deps, fixture('scheduled'));
    await route(w.deps, fixture('scheduled'));
    expect(w.commands).toHaveLength(1);

    w.finish((w.commands[0] as { commandId: string }).commandId, NEW_SHA, {
      [instanceId(1)]: { exitCode: 9, reason: 'cap failed' },
    });
    w.advance(10 * 60 * 1000);
    await route(w.deps, fixture('scheduled'));
    expect(w.commands).toHaveLength(1);
  });

  it('repairs no drift while the group is paused', async () => {
    const w = world(2);
    w.put('release', release(NEW_SHA));
    w.tags = new Map([[instanceId(2), OLD_SHA]]);
    w.put('paused', { since: 'now', reason: 'investigating' });

    await route(w.deps, fixture('scheduled'));

    expect(w.commands).toEqual([]);
  });

  it('repairs no drift while a deployment is in flight: the deployment brings every instance to its SHA', async () => {
    const w = world(2);
    w.put('release', release(OLD_SHA));
    w.tags = new Map([[instanceId(2), PREVIOUS_SHA]]);
    await operate(w, { action: 'deploy', group: 'web', revision: 'main' });

    const summary = await route(w.deps, fixture('scheduled'));

    expect(w.commands.map((command) => command.comment)).toEqual([expect.stringMatching(/ canary$/)]);
    expect(summary).toMatchObject({ result: { releases: { web: { deployment: { outcome: 'running' } } } } });
  });
});

describe('operator command completion', () => {
  it('logs each failed run of a redeploy with its instance, SHA, exit code and reason', async () => {
    const w = world(2);
    w.put('release', release(OLD_SHA));
    await route(w.deps, fixture('console-redeploy-group'));
    const command = only(w.commands);

    await finished(w, command.commandId, OLD_SHA, {
      [instanceId(2)]: { exitCode: 10, reason: 'REVISION mismatch' },
    });

    expect(w.logs.error).toHaveBeenCalledWith(
      'operator command Failed',
      expect.objectContaining({
        group: 'web',
        instanceId: instanceId(2),
        revision: OLD_SHA,
        exitCode: 10,
        reason: 'REVISION mismatch',
        stdoutTail: expect.stringContaining('SELFDEPLOY_RESULT'),
      }),
    );
  });
});

describe("the Lambda console's sample events", () => {
  it('deploy answers with the deployment id and its canary', async () => {
    const w = world(2);

    expect(await operate(w, fixture('console-deploy'))).toMatchObject({
      action: 'deploy',
      deploymentId: expect.stringMatching(/^d-/),
      phase: 'canary',
      summary: expect.stringMatching(/^web: deploy d-[a-z2-7]{12} of v2\.5\.0 started on canary i-/),
    });
  });

  it('rollback answers with the SHA it rolls back to', async () => {
    const w = world(2);
    w.put('release', release(NEW_SHA, OLD_SHA));

    expect(await operate(w, fixture('console-rollback'))).toMatchObject({ action: 'rollback', sha: OLD_SHA });
  });

  it("logs names the instance's runs", async () => {
    const w = world(0);
    w.inService = ['i-1234567890abcdef0'];

    expect(await operate(w, fixture('console-logs'))).toEqual({ action: 'logs', group: 'web', runs: [] });
  });
});

describe('revision tags after operator commands', () => {
  it('tags each instance of a finished phase with the SHA it now runs, and a failed one with its result only', async () => {
    const w = world(3);
    w.put('release', release(OLD_SHA));
    const answer = await operate(w, { action: 'deploy', group: 'web', revision: 'v2.5.0' });
    const canary = only(w.sentFor('canary'));
    await finished(w, canary.commandId, NEW_SHA);
    const rest = only(w.sentFor('rest'));
    const [good, bad] = rest.instanceIds as [string, string];

    await finished(w, rest.commandId, NEW_SHA, { [bad]: { exitCode: 9, reason: 'cap failed' } });

    const tagged = ec2.commandCalls(CreateTagsCommand).map((call) => call.args[0].input);
    expect(tagged).toContainEqual({
      Resources: [answer.action === 'deploy' ? answer.canary : ''],
      Tags: [
        { Key: 'selfdeploy:revision', Value: NEW_SHA },
        {
          Key: 'selfdeploy:last-deploy',
          Value: expect.stringMatching(new RegExp(`^success 0 \\S+ ${NEW_SHA}$`)),
        },
      ],
    });
    expect(tagged).toContainEqual({
      Resources: [good],
      Tags: [
        { Key: 'selfdeploy:revision', Value: NEW_SHA },
        { Key: 'selfdeploy:last-deploy', Value: expect.stringMatching(/^success 0 /) },
      ],
    });
    expect(tagged).toContainEqual({
      Resources: [bad],
      Tags: [
        {
          Key: 'selfdeploy:last-deploy',
          Value: expect.stringMatching(new RegExp(`^failure 9 \\S+ ${NEW_SHA}$`)),
        },
      ],
    });
  });
});
