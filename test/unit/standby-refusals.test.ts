import { PutParameterCommand, SendCommandCommand } from '@aws-sdk/client-ssm';
import { route } from '../../functions/orchestrator/router';
import type { Deployment } from '../../functions/shared/operator-actions';
import {
  advance,
  deployment,
  enteredStandby,
  exitedStandby,
  lastDeployment,
  NEW_SHA,
  OLD_SHA,
  operate,
  release,
  standbyDeployStarted,
  type World,
  world,
} from './deployments-world';
import { awsError, fixture, instanceId, ssm } from './support';

const entered = () => enteredStandby().length;
const exited = () => exitedStandby().length;

/** SSM's answer when it may not send to an instance (its agent gone, or the role may not reach it). */
const notReady = () => awsError('InvalidInstanceId', 'Instances not in a valid state for account');

/** A command's failed runs, by instance, as World.finish takes them. */
type Failing = (command: {
  commandId: string;
  instanceIds: string[];
}) => Record<string, { exitCode: number; reason: string }> | undefined;

/** Advances as status events and reconcile would, `rounds` times at most, each command succeeding at NEW_SHA but for `failing`. */
async function drive(w: World, rounds: number, failing?: Failing): Promise<void> {
  for (let round = 0; round < rounds && deployment(w); round++) {
    w.settle();
    for (const command of w.commands.filter((sent) => sent.status === 'InProgress')) {
      w.finish(command.commandId, NEW_SHA, failing?.(command));
    }
    w.advance(60_000);
    await advance(w);
  }
}

/** A standby deploy of `size` whose canary passed and whose next batch SendCommand refused, driven to its end. */
async function endedWithOneRefused(size: number) {
  const { w, answer } = await standbyDeployStarted(size);
  w.settle();
  await advance(w);
  w.finish(w.sentFor('canary')[0]?.commandId ?? '', NEW_SHA);
  const refused = instanceId(answer.canary === instanceId(1) ? 2 : 1);
  w.refused.add(refused);
  await drive(w, 60);
  return { w, answer, refused };
}

describe('a standby deployment SSM will not send to', () => {
  it('fails when it cannot reach the canary in Standby: the canary returns, the release stays, the failure says why', async () => {
    const { w, answer } = await standbyDeployStarted(3);
    w.settle();
    ssm.on(SendCommandCommand).rejects(notReady());

    await drive(w, 10);

    expect(deployment(w)).toBeUndefined();
    expect(lastDeployment(w)).toMatchObject({
      id: answer.deploymentId,
      phase: 'failed',
      failures: [{ instanceId: answer.canary, reason: expect.stringMatching(/^SendCommand refused it/) }],
    });
    expect(lastDeployment(w)?.standby).toBeUndefined();
    expect(w.states.get(answer.canary) ?? 'InService').toBe('InService');
    expect(w.sizes.desired).toBe(3);
    expect(w.record('release')).toMatchObject({ sha: OLD_SHA });
  });

  it('gives up on a batch SendCommand refuses: returns it, names it in the failures, and moves on to the end', async () => {
    const { w, answer, refused } = await endedWithOneRefused(4);

    expect(deployment(w)).toBeUndefined();
    const last = lastDeployment(w);
    expect(last).toMatchObject({ id: answer.deploymentId, phase: 'promoted', skipped: [refused] });
    expect(last?.failures).toEqual([
      {
        instanceId: refused,
        reason:
          'SendCommand refused it (Instances not in a valid state for account): returned unchanged, left to drift repair',
      },
    ]);
    // In and out once each for the canary and the four batches of one: never again.
    expect(entered()).toBe(4);
    expect(exited()).toBe(4);
    expect(w.states.size).toBe(0);
    expect(w.record('release')).toMatchObject({ sha: NEW_SHA });
  });
});

describe('the record of a failed standby deployment that gave up on instances', () => {
  it('keeps the failure that ended it when more than 10 were given up on', async () => {
    const { w, answer } = await standbyDeployStarted(20);
    w.settle();
    await advance(w);
    w.finish(w.sentFor('canary')[0]?.commandId ?? '', NEW_SHA);
    for (let i = 1; i <= 20; i++) if (instanceId(i) !== answer.canary) w.refused.add(instanceId(i));

    await drive(w, 200);

    const last = lastDeployment(w);
    expect(last).toMatchObject({ phase: 'failed', failureCount: 16 });
    expect(last?.failures).toHaveLength(5);
    expect(last?.failures[0]).toEqual({
      instanceId: 'none',
      reason: expect.stringMatching(/^the deployment gave up on 15 instances \(more than 10\)/),
    });
  });

  it('keeps the failed run that ended it after 6 were given up on', async () => {
    const { w, answer } = await standbyDeployStarted(10);
    w.settle();
    await advance(w);
    w.finish(w.sentFor('canary')[0]?.commandId ?? '', NEW_SHA);
    const others = Array.from({ length: 10 }, (_, i) => instanceId(i + 1)).filter(
      (id) => id !== answer.canary,
    );
    for (const id of others.slice(0, 6)) w.refused.add(id);
    const bad = others[8] as string;

    await drive(w, 200, (command) =>
      command.instanceIds.includes(bad)
        ? { [bad]: { exitCode: 14, reason: 'cap deploy failed' } }
        : undefined,
    );

    const last = lastDeployment(w);
    expect(last).toMatchObject({ phase: 'failed', failureCount: 7 });
    expect(last?.failures[0]).toMatchObject({ instanceId: bad, exitCode: 14 });
    expect(last?.failures.slice(1).every((failure) => /^SendCommand refused it/.test(failure.reason))).toBe(
      true,
    );
  });
});

/** The largest value, in bytes, written to the deployment, last-deployment and last-repair parameters. */
function largestRecord(): number {
  return Math.max(
    ...ssm
      .commandCalls(PutParameterCommand)
      .filter((call) => /\/(deployment|last-deployment|last-repair)$/.test(String(call.args[0].input.Name)))
      .map((call) => Buffer.byteLength(String(call.args[0].input.Value))),
  );
}

/** Parameter Store's Standard tier holds at most 4 KB a parameter. */
const STANDARD_TIER_BYTES = 4096;

describe('a deployment record at scale', () => {
  it('stays within 4 KB through a standby deployment of 1000 instances in batches of one', async () => {
    const w = world(1000, 'standby');
    w.sizes.min = 999;
    w.sizes.max = 1000;
    w.put('release', release(OLD_SHA));
    await operate(w, { action: 'deploy', group: 'web', revision: 'v2' });

    await drive(w, 5000);

    expect(lastDeployment(w)).toMatchObject({ phase: 'promoted', sha: NEW_SHA });
    expect(w.commands).toHaveLength(1000);
    expect(largestRecord()).toBeLessThan(STANDARD_TIER_BYTES);
  }, 300_000);

  it.each([1000, 3000])(
    'stays within 4 KB through an in-place deployment of %i instances (commands of 50) that fails at the end',
    async (count) => {
      const w = world(count);
      w.put('release', release(OLD_SHA));
      await operate(w, { action: 'deploy', group: 'web', revision: 'v2' });
      w.finish(w.sentFor('canary')[0]?.commandId ?? '', NEW_SHA);
      await advance(w);
      const rest = w.sentFor('rest');
      expect(rest.length).toBeGreaterThan(10);
      for (const command of rest.slice(0, -1)) w.finish(command.commandId, NEW_SHA);
      await advance(w);
      expect(deployment(w)).toMatchObject({ phase: 'rest' });
      const lastCommand = rest.at(-1);
      w.finish(lastCommand?.commandId ?? '', NEW_SHA, {
        [lastCommand?.instanceIds[0] ?? '']: { exitCode: 14, reason: 'cap deploy failed' },
      });

      await advance(w);

      expect(lastDeployment(w)).toMatchObject({
        phase: 'failed',
        failures: [{ instanceId: lastCommand?.instanceIds[0], exitCode: 14 }],
      });
      expect(largestRecord()).toBeLessThan(STANDARD_TIER_BYTES);
    },
    120_000,
  );
});

describe("an ended deployment's instances in Standby", () => {
  it('returned by two executions at once: the one refused ("not in Standby") counts them as returned, and the next deploy starts', async () => {
    const { w, answer } = await standbyDeployStarted(3);
    w.settle();
    await advance(w);
    const canary = w.sentFor('canary')[0]?.commandId ?? '';
    w.finish(canary, NEW_SHA, { [answer.canary]: { exitCode: 14, reason: 'cap deploy failed' } });
    await advance(w);
    w.finish(w.sentFor('restore')[0]?.commandId ?? '', OLD_SHA);

    await Promise.all([advance(w), advance(w)]);

    expect(exited()).toBeGreaterThanOrEqual(1);
    expect(lastDeployment(w)).toMatchObject({ id: answer.deploymentId, phase: 'failed' });
    expect(lastDeployment(w)?.standby).toBeUndefined();
    w.settle();
    await expect(operate(w, { action: 'deploy', group: 'web', revision: 'v3' })).resolves.toMatchObject({
      phase: 'canary',
    });
  });
});

describe('a drift repair after a failed standby deploy', () => {
  it("keeps the failed deployment's record (failures, logs) and is named when it refuses the operator's deploy", async () => {
    const { w, answer } = await standbyDeployStarted(3);
    w.tags = new Map([1, 2, 3].map((index) => [instanceId(index), OLD_SHA]));
    // The canary succeeds (its tag moves on); the first batch of the rest fails.
    for (let round = 0; round < 40 && deployment(w); round++) {
      w.settle();
      for (const command of w.commands.filter((sent) => sent.status === 'InProgress')) {
        const rest = command.comment.endsWith(' rest');
        const failing = rest
          ? Object.fromEntries(command.instanceIds.map((id) => [id, { exitCode: 14, reason: 'boom' }]))
          : {};
        w.finish(command.commandId, NEW_SHA, failing);
        if (command.comment.endsWith(' canary')) w.tags.set(answer.canary, NEW_SHA);
      }
      await advance(w);
    }
    const failed = lastDeployment(w);
    expect(failed).toMatchObject({ id: answer.deploymentId, phase: 'failed' });

    // The failed batch's restore ends; the next reconcile returns it, the one after repairs the canary.
    for (const command of w.commands.filter((sent) => sent.status === 'InProgress')) {
      w.finish(command.commandId, OLD_SHA);
    }
    await route(w.deps, fixture('scheduled'));
    w.settle();
    await route(w.deps, fixture('scheduled'));
    const repair = deployment(w);
    expect(repair).toMatchObject({ reason: 'drift repair', driftRepair: [answer.canary] });
    await expect(operate(w, { action: 'deploy', group: 'web', revision: 'v3' })).rejects.toThrow(
      `group web has drift repair ${repair?.id} in flight (reconcile bringing ${answer.canary} back to the release ${OLD_SHA} through Standby`,
    );
    for (let round = 0; round < 20 && deployment(w); round++) {
      w.settle();
      for (const command of w.commands.filter((sent) => sent.status === 'InProgress')) {
        w.finish(command.commandId, OLD_SHA);
      }
      await route(w.deps, fixture('scheduled'));
    }

    expect(deployment(w)).toBeUndefined();
    expect(w.record('last-repair')).toMatchObject({ id: repair?.id, phase: 'promoted' });
    expect(lastDeployment(w)).toMatchObject({
      id: answer.deploymentId,
      phase: 'failed',
      failures: failed?.failures,
    });
    expect(failed?.failures).toEqual([expect.objectContaining({ exitCode: 14, reason: 'boom' })]);
    await expect(
      operate(w, { action: 'logs', group: 'web', deploymentId: answer.deploymentId }),
    ).resolves.toMatchObject({ action: 'logs' });
  });
});

describe('a standby deployment behind a load balancer', () => {
  it('holds the next batch while the last one is Unhealthy in Auto Scaling', async () => {
    const { w, answer } = await standbyDeployStarted(3);
    w.group.TargetGroupARNs = [
      'arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/web/0123456789abcdef',
    ];
    w.group.HealthCheckGracePeriod = 120;
    w.settle();
    await advance(w);
    w.finish(w.sentFor('canary')[0]?.commandId ?? '', NEW_SHA);
    await advance(w);
    expect(exited()).toBe(1);
    w.settle();
    w.unhealthy.add(answer.canary);
    w.advance(150_000);

    await advance(w);
    expect(entered()).toBe(1);

    w.unhealthy.clear();
    await advance(w);
    expect(entered()).toBe(2);
  });

  it('waits out the grace period after ExitStandby before the next batch leaves', async () => {
    const { w } = await standbyDeployStarted(3);
    w.group.TargetGroupARNs = [
      'arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/web/0123456789abcdef',
    ];
    w.group.HealthCheckGracePeriod = 120;
    w.settle();
    await advance(w);
    w.finish(w.sentFor('canary')[0]?.commandId ?? '', NEW_SHA);
    await advance(w);
    w.settle();
    w.advance(60_000);

    await advance(w);
    expect(entered()).toBe(1);

    w.advance(61_000);
    await advance(w);
    expect(entered()).toBe(2);
  });
});

describe('drift repair of an instance SSM refuses', () => {
  it('takes it out of service once, not on every reconcile run, within the retry window', async () => {
    const w = world(3, 'standby');
    w.put('release', release(NEW_SHA));
    w.tags = new Map([[instanceId(2), OLD_SHA]]);
    w.refused.add(instanceId(2));
    const repairs = new Set<string>();
    for (let run = 0; run < 6; run++) {
      await route(w.deps, fixture('scheduled'));
      const repair = deployment(w)?.id;
      if (repair) repairs.add(repair);
      await drive(w, 10);
      w.advance(5 * 60_000);
    }

    expect(entered()).toBe(1);
    expect(exited()).toBe(1);
    expect(repairs.size).toBe(1);
    expect(w.record('last-repair')).toMatchObject({ skipped: [instanceId(2)] });
    expect(w.states.size).toBe(0);
  });

  it('leaves alone an instance the last deployment gave up on within the retry window', async () => {
    const { w, refused } = await endedWithOneRefused(3);
    expect(lastDeployment(w)).toMatchObject({ phase: 'promoted', skipped: [refused] });
    w.tags = new Map([[refused, OLD_SHA]]);
    const before = entered();

    for (let run = 0; run < 3; run++) {
      w.advance(5 * 60_000);
      await route(w.deps, fixture('scheduled'));
      await drive(w, 10);
    }

    expect(entered()).toBe(before);
    expect(w.record('last-repair')).toBeUndefined();
  });
});

describe('a drift repair the previous version kept in last-deployment', () => {
  it('with an instance left in Standby: reconcile returns it, clears the record, and the next deploy starts', async () => {
    const w = world(3, 'standby');
    w.put('release', release(NEW_SHA));
    const old: Deployment = {
      id: 'd-aaaaaaaaaaaa',
      group: 'web',
      kind: 'deploy',
      requested: NEW_SHA,
      sha: NEW_SHA,
      baseline: NEW_SHA,
      reason: 'drift repair',
      requestedAt: new Date(w.deps.clock.now() - 600_000).toISOString(),
      updatedAt: new Date(w.deps.clock.now() - 300_000).toISOString(),
      phase: 'failed',
      step: 4,
      commands: [],
      failures: [{ instanceId: instanceId(2), reason: 'cap deploy failed' }],
      driftRepair: [instanceId(2)],
      standby: { instanceIds: [instanceId(2)], stage: 'returning' },
    };
    w.put('last-deployment', old);
    w.states.set(instanceId(2), 'Standby');
    w.sizes.desired = 2;

    for (let run = 0; run < 3; run++) {
      w.advance(300_000);
      await route(w.deps, fixture('scheduled'));
      w.settle();
    }

    expect(w.states.get(instanceId(2)) ?? 'InService').toBe('InService');
    expect(lastDeployment(w)?.standby).toBeUndefined();
    await expect(operate(w, { action: 'deploy', group: 'web', revision: 'v2' })).resolves.toMatchObject({
      phase: 'canary',
    });
  });
});

describe('logs of a drift repair', () => {
  it("show only the repair's runs, not later drift runs to another group's instances", async () => {
    const w = world(2, 'standby');
    w.put('release', release(NEW_SHA));
    w.tags = new Map([[instanceId(2), OLD_SHA]]);
    // Reconcile repairs another (in-place) group's drift meanwhile and later: same document, same Comment.
    const foreignDrift = (from: number, count: number) => {
      for (let i = from; i < from + count; i++) {
        const foreign = `i-0aaaaaaaaaaaaaa${i.toString().padStart(2, '0')}`;
        w.commands.push({
          commandId: `foreign-${i}`,
          instanceIds: [foreign],
          parameters: { revision: [NEW_SHA] },
          comment: 'selfdeploy drift',
          requestedAt: new Date(w.deps.clock.now() + i),
          status: 'Success',
          runs: new Map([[foreign, { status: 'Success', responseCode: 0, stdout: 'other group' }]]),
        });
      }
    };
    await route(w.deps, fixture('scheduled'));
    const repairId = deployment(w)?.id;
    foreignDrift(0, 3);
    await drive(w, 10);
    expect(w.record('last-repair')).toMatchObject({ id: repairId, phase: 'promoted' });
    w.advance(3_600_000);
    foreignDrift(3, 12);

    const answer = (await operate(w, { action: 'logs', group: 'web', deploymentId: repairId })) as {
      runs: readonly { instanceId: string }[];
    };

    expect(answer.runs.map((run) => run.instanceId)).toEqual([instanceId(2)]);
  });
});
