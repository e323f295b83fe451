import { EnterStandbyCommand } from '@aws-sdk/client-auto-scaling';
import { SendCommandCommand } from '@aws-sdk/client-ssm';
import { route } from '../../functions/orchestrator/router';
import { concurrencyLimit, enterRoom, exitRoom } from '../../functions/orchestrator/standby';
import type { Deployment } from '../../functions/shared/operator-actions';
import {
  advance,
  deployment,
  enteredStandby as entered,
  exitedStandby as exited,
  lastDeployment,
  NEW_SHA,
  OLD_SHA,
  operate,
  release,
  type SentCommand,
  standbyDeployStarted,
  type World,
  world,
} from './deployments-world';
import { autoScaling, fixture, instanceId, ssm } from './support';

/**
 * Runs a standby deployment to its end as status events and reconcile would: each command
 * finishes (successfully, at NEW_SHA), each standby transition completes. Records, for every
 * command sent, the lifecycle states of its instances when it was sent, and the most instances
 * out of service at once.
 */
async function driveToEnd(w: World) {
  const statesAtSend: string[] = [];
  let mostOut = 0;
  const seen = new Set<string>();
  for (let round = 0; round < 100 && deployment(w); round++) {
    for (const command of w.commands) {
      if (seen.has(command.commandId)) continue;
      seen.add(command.commandId);
      statesAtSend.push(...command.instanceIds.map((id) => w.states.get(id) ?? 'InService'));
    }
    mostOut = Math.max(mostOut, [...w.states.values()].length);
    w.settle();
    for (const command of w.commands.filter((sent) => sent.status === 'InProgress')) {
      w.finish(command.commandId, NEW_SHA);
    }
    await advance(w);
  }
  return { statesAtSend, mostOut };
}

describe('standby decisions', () => {
  it('let out a batch no larger than the rate control and than the desired capacity above MinSize', () => {
    const sizes = { name: 'web', min: 2, max: 10, desired: 6 };

    expect(concurrencyLimit('25%', 6)).toBe(1);
    expect(concurrencyLimit('50%', 6)).toBe(3);
    expect(concurrencyLimit('4', 6)).toBe(4);
    expect(concurrencyLimit('10%', 3)).toBe(1);
    expect(enterRoom(sizes, 10, 3)).toEqual({ take: 3 });
    expect(enterRoom(sizes, 10, 8)).toEqual({ take: 4 });
    expect(enterRoom(sizes, 2, 8)).toEqual({ take: 2 });
  });

  it('at MinSize let none out, naming the sizes and what would let the batch go', () => {
    expect(enterRoom({ name: 'web', min: 3, max: 5, desired: 3 }, 2, 2)).toEqual({
      waiting:
        'group web has min-size=3, max-size=5, desired=3: a Standby batch would take the desired capacity below MinSize; lower MinSize or raise the desired capacity to 4 or more',
    });
  });

  it('return from Standby only as many as keep the desired capacity within MaxSize, naming the rest', () => {
    expect(exitRoom({ name: 'web', min: 0, max: 6, desired: 3 }, 2)).toEqual({ take: 2 });
    const full = exitRoom({ name: 'web', min: 0, max: 4, desired: 3 }, 3);
    expect(full.take).toBe(1);
    expect(full.waiting).toMatch(
      /^group web has min-size=0, max-size=4, desired=3: 2 instance\(s\) stay in Standby/,
    );
    expect(exitRoom({ name: 'web', min: 0, max: 3, desired: 5 }, 1).take).toBe(0);
  });
});

describe('a standby deployment', () => {
  it('moves the canary to Standby with the desired capacity decremented and sends it nothing until it is out of service', async () => {
    const { w, answer } = await standbyDeployStarted(3, 1);

    expect(entered()).toEqual([
      { AutoScalingGroupName: 'web', InstanceIds: [answer.canary], ShouldDecrementDesiredCapacity: true },
    ]);
    expect(w.sizes.desired).toBe(2);
    expect(w.commands).toEqual([]);
    expect(deployment(w)).toMatchObject({
      phase: 'canary',
      standby: { instanceIds: [answer.canary], stage: 'entering' },
    });
    // Still EnteringStandby (its load balancer drains it): nothing moves.
    expect(await advance(w)).toEqual({ outcome: 'running', deploymentId: answer.deploymentId });
    expect(w.commands).toEqual([]);

    w.settle();
    await advance(w);

    const canary = w.sentFor('canary')[0] as SentCommand;
    expect(canary.instanceIds).toEqual([answer.canary]);
    expect(canary.parameters).toMatchObject({ revision: ['v2'], migrate: ['true'] });
    expect(w.states.get(answer.canary)).toBe('Standby');
    expect(deployment(w)).toMatchObject({ standby: { stage: 'deploying' } });
  });

  it('returns each batch after its run, sends only to instances in Standby, and promotes when none is left', async () => {
    const { w, answer } = await standbyDeployStarted(9, 6);

    const { statesAtSend, mostOut } = await driveToEnd(w);

    expect(lastDeployment(w)).toMatchObject({ id: answer.deploymentId, phase: 'promoted', sha: NEW_SHA });
    expect(lastDeployment(w)?.standby).toBeUndefined();
    expect(w.record('release')).toMatchObject({ sha: NEW_SHA, previous: OLD_SHA });
    // Every instance got the SHA, each only while out of service.
    expect(new Set(w.commands.flatMap((command) => command.instanceIds))).toEqual(new Set(w.inService));
    expect(new Set(statesAtSend)).toEqual(new Set(['Standby']));
    // 25% of 9 is 2, and the desired capacity (9) may not go below MinSize (6) by more than 3.
    expect(mostOut).toBe(2);
    expect(Math.max(...entered().map((input) => input.InstanceIds?.length ?? 0))).toBe(2);
    expect(w.sizes.desired).toBe(9);
    expect(w.states.size).toBe(0);
  });

  it('takes batches of at most the desired capacity above MinSize', async () => {
    const { w } = await standbyDeployStarted(9, 8);

    const { mostOut } = await driveToEnd(w);

    expect(lastDeployment(w)).toMatchObject({ phase: 'promoted' });
    expect(mostOut).toBe(1);
  });

  it('at MinSize refuses to start, naming the sizes, and writes and sends nothing', async () => {
    const w = world(2, 'standby');
    w.sizes.min = 2;

    await expect(operate(w, { action: 'deploy', group: 'web', revision: 'v2' })).rejects.toMatchObject({
      name: 'ActionRefusedError',
      message:
        'deploy refused: group web has min-size=2, max-size=200, desired=2: a Standby batch would take the desired capacity below MinSize; lower MinSize or raise the desired capacity to 3 or more, or deploy this group in place (deployWith: in-place)',
    });
    expect(entered()).toEqual([]);
    expect(ssm.commandCalls(SendCommandCommand)).toEqual([]);
    expect(deployment(w)).toBeUndefined();
  });

  it('reaching MinSize mid-way (the group scaled in) waits, its record saying why, and goes on once there is room', async () => {
    const { w, answer } = await standbyDeployStarted(4, 0);
    w.settle();
    await advance(w); // canary sent
    w.finish((w.sentFor('canary')[0] as SentCommand).commandId, NEW_SHA);
    await advance(w); // canary returning
    w.settle();
    w.sizes.min = w.sizes.desired; // scaled in to MinSize meanwhile

    expect(await advance(w)).toEqual({ outcome: 'running', deploymentId: answer.deploymentId });
    expect(deployment(w)?.standby).toMatchObject({
      instanceIds: [],
      waiting: expect.stringContaining('min-size=4, max-size=200, desired=4'),
    });
    expect(entered()).toHaveLength(1); // the canary's only
    expect(await advance(w)).toEqual({ outcome: 'running', deploymentId: answer.deploymentId });

    w.sizes.min = 0;
    expect(await advance(w)).toMatchObject({ outcome: 'advanced', phase: 'rest' });
    expect(entered()).toHaveLength(2);
  });

  it('at MaxSize keeps a finished batch in Standby, named in its record, and returns it once there is room', async () => {
    const { w, answer } = await standbyDeployStarted(3, 0);
    w.settle();
    await advance(w);
    w.finish((w.sentFor('canary')[0] as SentCommand).commandId, NEW_SHA);
    w.sizes.max = w.sizes.desired; // the group scaled out to MaxSize while the canary was out

    await advance(w);
    expect(exited()).toEqual([]);
    expect(w.states.get(answer.canary)).toBe('Standby');
    expect(deployment(w)?.standby).toMatchObject({
      instanceIds: [answer.canary],
      stage: 'returning',
      waiting: expect.stringContaining('max-size=2'),
    });
    expect(await advance(w)).toEqual({ outcome: 'running', deploymentId: answer.deploymentId });

    w.sizes.max = 3;
    await advance(w);
    expect(exited()).toEqual([{ AutoScalingGroupName: 'web', InstanceIds: [answer.canary] }]);
  });

  it('takes instances that joined meanwhile in a later batch, and drops one that left the group', async () => {
    const { w } = await standbyDeployStarted(3, 0);
    const joiner = instanceId(9);
    w.settle();
    await advance(w);
    w.finish((w.sentFor('canary')[0] as SentCommand).commandId, NEW_SHA);
    w.inService = [...w.inService.filter((id) => id !== instanceId(3)), joiner]; // one terminated, one launched

    const { statesAtSend } = await driveToEnd(w);

    expect(lastDeployment(w)).toMatchObject({ phase: 'promoted' });
    const reached = w.commands.flatMap((command) => command.instanceIds);
    expect(reached).toContain(joiner);
    expect(reached).not.toContain(instanceId(3));
    expect(new Set(statesAtSend)).toEqual(new Set(['Standby']));
  });

  it('restores a failed instance while it is still out of service, fails, and returns it once the restore is done', async () => {
    const { w, answer } = await standbyDeployStarted(3, 0);
    w.settle();
    await advance(w);
    const canary = w.sentFor('canary')[0] as SentCommand;
    w.finish(canary.commandId, NEW_SHA, { [answer.canary]: { exitCode: 14, reason: 'cap deploy failed' } });

    await advance(w);
    const restore = w.sentFor('restore')[0] as SentCommand;
    expect(restore).toMatchObject({
      instanceIds: [answer.canary],
      parameters: expect.objectContaining({ revision: [OLD_SHA] }),
    });
    expect(w.states.get(answer.canary)).toBe('Standby');
    expect(deployment(w)).toBeUndefined();
    expect(lastDeployment(w)).toMatchObject({
      phase: 'failed',
      failures: [{ instanceId: answer.canary, exitCode: 14 }],
      standby: { instanceIds: [answer.canary], stage: 'restoring' },
    });
    expect(w.record('release')).toMatchObject({ sha: OLD_SHA });

    // A new deploy must wait: the group still has an instance out of service.
    await expect(operate(w, { action: 'deploy', group: 'web', revision: 'v3' })).rejects.toMatchObject({
      name: 'ActionRefusedError',
      message: expect.stringContaining(
        `still has ${answer.canary} in Standby from deployment ${answer.deploymentId}`,
      ),
    });
    // Reconcile leaves it out while the restore runs.
    await route(w.deps, fixture('scheduled'));
    expect(exited()).toEqual([]);

    w.finish(restore.commandId, OLD_SHA);
    await route(w.deps, w.statusEvent(restore));

    expect(exited()).toEqual([{ AutoScalingGroupName: 'web', InstanceIds: [answer.canary] }]);
    expect(lastDeployment(w)?.standby).toBeUndefined();
  });

  it('returns a failed batch at once when there was no release to restore it to', async () => {
    const w = world(2, 'standby');
    const answer = (await operate(w, { action: 'deploy', group: 'web', revision: 'v1' })) as {
      canary: string;
    };
    w.settle();
    await advance(w);
    const canary = w.sentFor('canary')[0] as SentCommand;
    w.finish(canary.commandId, NEW_SHA, { [answer.canary]: { exitCode: 14, reason: 'cap deploy failed' } });

    await advance(w);

    expect(w.sentFor('restore')).toEqual([]);
    expect(exited()).toEqual([{ AutoScalingGroupName: 'web', InstanceIds: [answer.canary] }]);
    expect(lastDeployment(w)).toMatchObject({ phase: 'failed' });
    expect(lastDeployment(w)?.standby).toBeUndefined();
  });

  it('leaves in service an instance whose EnterStandby is refused (the group changed meanwhile) and asked again; refused again, it is given up on and another batch is chosen', async () => {
    const { w, answer } = await standbyDeployStarted(3, 0);
    w.settle();
    await advance(w);
    w.finish((w.sentFor('canary')[0] as SentCommand).commandId, NEW_SHA);
    await advance(w);
    w.settle();
    const refusal = Object.assign(new Error('AutoScalingGroup web has min-size=…'), {
      name: 'ValidationError',
    });
    autoScaling.on(EnterStandbyCommand).rejects(refusal);

    expect(await advance(w)).toEqual({ outcome: 'running', deploymentId: answer.deploymentId });
    const chosen = deployment(w)?.standby?.instanceIds ?? [];
    expect(chosen).toHaveLength(1);
    expect(await advance(w)).toEqual({ outcome: 'running', deploymentId: answer.deploymentId });
    expect(deployment(w)?.standby).toMatchObject({ instanceIds: [], stage: 'entering' });
    expect(w.states.size).toBe(0);
    expect(deployment(w)).toMatchObject({
      skipped: chosen,
      failures: [{ instanceId: chosen[0], reason: expect.stringMatching(/^EnterStandby refused it/) }],
    });
    autoScaling.on(EnterStandbyCommand).callsFake(() => ({ Activities: [] }));
    const asked = entered().length;
    await advance(w);
    expect(entered()).toHaveLength(asked + 1);
    expect(entered()[asked]?.InstanceIds).toHaveLength(1);
    expect(entered()[asked]?.InstanceIds).not.toEqual(chosen);
  });

  it('fails, sending nothing, when the canary leaves the group before it could deploy out of service', async () => {
    const { w, answer } = await standbyDeployStarted(3, 0);
    w.inService = w.inService.filter((id) => id !== answer.canary); // terminated while EnteringStandby
    w.states.delete(answer.canary);

    expect(await advance(w)).toMatchObject({ outcome: 'advanced', phase: 'failed' });

    expect(w.commands).toEqual([]);
    expect(lastDeployment(w)).toMatchObject({
      phase: 'failed',
      failures: [
        {
          instanceId: answer.canary,
          reason: expect.stringContaining('could not be deployed out of service'),
        },
      ],
    });
    expect(lastDeployment(w)?.standby).toBeUndefined();
    expect(w.record('release')).toMatchObject({ sha: OLD_SHA });
  });

  it('outlives the invocation that chose a batch: a batch recorded but never asked to leave is asked again', async () => {
    const { w, answer } = await standbyDeployStarted(3, 0);
    const recorded = deployment(w) as Deployment;
    // As if the invocation stopped after writing its intent, before EnterStandby.
    w.states.clear();
    w.sizes.desired = 3;

    await route(w.deps, fixture('scheduled'));

    expect(entered()).toHaveLength(2);
    expect(entered()[1]).toMatchObject({ InstanceIds: recorded.standby?.instanceIds });
    expect(w.states.get(answer.canary)).toBe('EnteringStandby');
  });

  it('repairs drift through Standby: only the drifted instances, each out of service, the release unchanged, retried hourly', async () => {
    const w = world(3, 'standby');
    const current = release(NEW_SHA);
    w.put('release', current);
    w.tags = new Map([
      [instanceId(1), NEW_SHA],
      [instanceId(2), OLD_SHA],
      [instanceId(3), OLD_SHA],
    ]);

    const summary = await route(w.deps, fixture('scheduled'));

    expect(w.commands).toEqual([]);
    expect(entered()).toEqual([
      { AutoScalingGroupName: 'web', InstanceIds: [instanceId(2)], ShouldDecrementDesiredCapacity: true },
    ]);
    const repair = deployment(w);
    expect(repair).toMatchObject({
      reason: 'drift repair',
      sha: NEW_SHA,
      phase: 'rest',
      driftRepair: [instanceId(2), instanceId(3)],
    });
    expect(repair?.canary).toBeUndefined();
    expect(summary).toMatchObject({
      result: {
        releases: { web: { drifted: 2, repair: { deploymentId: repair?.id, standby: [instanceId(2)] } } },
      },
    });

    const { statesAtSend } = await driveToEnd(w);

    expect(w.commands.flatMap((command) => command.instanceIds).sort()).toEqual([
      instanceId(2),
      instanceId(3),
    ]);
    for (const command of w.commands) {
      expect(command).toMatchObject({
        comment: 'selfdeploy drift',
        parameters: expect.objectContaining({ revision: [NEW_SHA], migrate: ['false'] }),
      });
    }
    expect(new Set(statesAtSend)).toEqual(new Set(['Standby']));
    expect(w.record('last-repair')).toMatchObject({ id: repair?.id, phase: 'promoted' });
    expect(lastDeployment(w)).toBeUndefined();
    expect(w.record('release')).toEqual(current);

    // Their tags still say OLD_SHA (as if they could not deploy it): not again within the hour.
    await route(w.deps, fixture('scheduled'));
    expect(deployment(w)).toBeUndefined();
    expect(entered()).toHaveLength(2);
  });

  it('ends a failed drift repair without restoring or alarming: the instance returns to service at once', async () => {
    const w = world(2, 'standby');
    w.put('release', release(NEW_SHA));
    w.tags = new Map([[instanceId(2), OLD_SHA]]);
    await route(w.deps, fixture('scheduled'));
    w.settle();
    await advance(w);
    const command = w.commands[0] as SentCommand;

    w.finish(command.commandId, NEW_SHA, { [instanceId(2)]: { exitCode: 14, reason: 'cap deploy failed' } });
    await route(w.deps, w.statusEvent(command));

    expect(w.record('last-repair')).toMatchObject({
      phase: 'failed',
      failures: [{ instanceId: instanceId(2) }],
    });
    expect(w.commands).toHaveLength(1);
    expect(exited()).toEqual([{ AutoScalingGroupName: 'web', InstanceIds: [instanceId(2)] }]);
    expect(w.metrics.map((metric) => metric.name)).not.toContain('DeployFailed');
  });

  it('is never used by an in-place group', async () => {
    const w = world(3);
    await operate(w, { action: 'deploy', group: 'web', revision: 'v2' });

    expect(entered()).toEqual([]);
    expect(w.sentFor('canary')).toHaveLength(1);
  });
});
