import type { InstanceRecord, LocalRun } from '../../scripts/local/local-run';
import { groupRecord, localRuns } from './support';

// Real deploys: bash, self-deploy.sh, Capistrano over a loopback sshd, git; each run with
// its own application user (as root) and sshd.
jest.setTimeout(90_000);

const start = localRuns();

function selfDeployCommandsFor(local: LocalRun, instanceId: string) {
  return local.plane.ssm.commands().filter((c) => c.invocations.some((i) => i.instanceId === instanceId));
}

describe('a scale-out through the local control plane and the real handler', () => {
  it('deploys the branch head on each of 3 new instances and puts them in service', async () => {
    const local = await start();
    const head = local.app?.head();

    local.scaleTo(3);
    await local.waitFor('3 instances InService', () => local.settled(), 60_000);

    const instances = local.instances();
    expect(instances).toHaveLength(3);
    for (const instance of instances) {
      expect(local.records.get(instance.id)).toMatchObject({ result: 'CONTINUE', completedBy: 'api' });
      expect(local.revisionOf(instance.id)).toBe(head);
      // SQS delivers at least once (the stand-in copies 1% of receives): a copy handled at the
      // same moment as the first may send a second command for the same wait. Its run finds
      // the first holding the wait's lock and exits 13 (no verdict), or finds it done and takes
      // the fast path; it never fails the wait.
      const [first, ...copies] = selfDeployCommandsFor(local, instance.id).map(
        (command) => command.invocations[0],
      );
      expect(first).toMatchObject({ status: 'Success', responseCode: 0 });
      for (const copy of copies) expect([0, 13]).toContain(copy?.responseCode);
    }
  });

  it('abandons an instance whose deploy fails; the replacement is deployed and serves', async () => {
    let first: string | undefined;
    const local = await start({
      sshdDown: (id) => {
        first ??= id;
        return id === first;
      },
    });

    local.scaleTo(1);
    await local.waitFor('a replacement InService', () => local.settled(), 60_000);

    const [broken, replacement] = [...local.records.values()];
    expect(broken).toMatchObject<Partial<InstanceRecord>>({
      id: first,
      result: 'ABANDON',
      completedBy: 'api',
    });
    expect(broken?.terminatedAt).toBeDefined();
    expect(local.plane.ssm.commands().find((c) => c.invocations[0]?.instanceId === first)?.status).toBe(
      'Failed',
    );
    expect(replacement).toMatchObject({ result: 'CONTINUE' });
    expect(local.revisionOf(replacement?.id ?? '')).toBe(local.app?.head());
    expect(local.instances().map((i) => i.id)).toEqual([replacement?.id]);
  });

  it('deploys once the agent registers late: the wait goes back to the queue, no SendCommand before the agent is online', async () => {
    // 60 simulated seconds at 20x: the agent registers 3 s after launch.
    const local = await start({ timeScale: 20, agentDelaySeconds: 60 });

    local.scaleTo(1);
    await local.waitFor('the instance InService', () => local.settled(), 60_000);

    const [instance] = local.instances();
    const calls = (operation: string) => local.plane.calls.filter((c) => c.operation === operation);
    expect(calls('SendCommand').map((c) => c.error)).toEqual([undefined]);
    expect(calls('SendMessageBatch').length).toBeGreaterThan(0);
    expect(calls('DescribeInstanceInformation').length).toBeGreaterThan(1);
    expect(local.revisionOf(instance?.id ?? '')).toBe(local.app?.head());
  });

  it('redeploys the whole group at its release from a console-style manual action, not a newer push', async () => {
    const local = await start();
    local.scaleTo(2);
    await local.waitFor('2 instances InService', () => local.settled(), 60_000);
    // The first launch records the release (just after completing its lifecycle action); a
    // push changes it only through a deploy.
    const release = local.app?.head();
    await local.waitFor(
      'the first launch to record the release',
      () => groupRecord(local, 'release') !== undefined,
      10_000,
    );
    expect(groupRecord<{ sha: string }>(local, 'release')?.sha).toBe(release);
    local.app?.commit('Second version');

    const result = await local.orchestrator.invoke({ action: 'redeploy', autoScalingGroupName: 'web' });
    await local.waitFor(
      'the redeploy commands to finish',
      () =>
        local.plane.ssm
          .commands()
          .every((c) => ['Success', 'Failed', 'TimedOut', 'Cancelled'].includes(c.status)),
      60_000,
    );

    expect(result).toMatchObject({ kind: 'redeploy', result: { instances: 2, skipped: [] } });
    for (const instance of local.instances()) {
      expect(instance.state).toBe('InService');
      expect(local.revisionOf(instance.id)).toBe(release);
    }
  });

  it('abandons a launch whose lifecycle metadata is hostile, and runs nothing on it', async () => {
    const local = await start({
      hook: { notificationMetadata: '{"revision":"$(touch /tmp/selfdeploy-pwned)"}' },
    });

    local.scaleTo(1);
    await local.waitFor(
      'the first launch to be abandoned',
      () => [...local.records.values()][0]?.result !== undefined,
      30_000,
    );
    local.scaleTo(0);

    expect([...local.records.values()][0]).toMatchObject({ result: 'ABANDON', completedBy: 'api' });
    expect(local.plane.calls.filter((c) => c.operation === 'SendCommand')).toEqual([]);
    expect(local.plane.ssm.commands()).toEqual([]);
  });
});
