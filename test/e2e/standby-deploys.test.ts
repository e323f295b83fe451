import { TOP_LEVEL_SETTINGS } from '../../functions/shared/group-settings';
import type { Deployment, Release } from '../../functions/shared/operator-actions';
import { GROUP_NAME } from '../../scripts/local/local-run';
import { groupRecord, localRuns, operate } from './support';

// A group that deploys through Standby, near its MinSize, through the local control plane and
// the real handler: real deploys (self-deploy.sh, Capistrano over a loopback sshd, git), each
// batch moved out of service by EnterStandby, deployed, and returned by ExitStandby; status
// events and nudges through the event queue move the deployment on. The reconcile schedule
// runs at its default interval (5 minutes), later than the deployment must end: no batch
// waits for it.
jest.setTimeout(180_000);

/** The reconcile schedule's default interval. */
const RECONCILE_EVERY_SECONDS = Number(TOP_LEVEL_SETTINGS.reconcileInterval.default);

const start = localRuns();

describe('Standby deploys through the local control plane', () => {
  it('deploys a group one Standby batch at a time, never below MinSize; restores a failed canary in Standby; refuses at MinSize', async () => {
    const local = await start({
      minSize: 2,
      group: { deployWith: 'standby' },
      reconcileEverySeconds: RECONCILE_EVERY_SECONDS,
    });
    local.scaleTo(3);
    await local.waitFor('3 instances InService', () => local.settled(), 60_000);
    const group = local.plane.autoScaling.group(GROUP_NAME);
    const head = local.app?.head();

    // Watched all along: what every running deploy's instance was in, and the lowest desired capacity.
    const statesWhileDeploying = new Set<string>();
    let lowestDesired = group.desiredCapacity;
    let mostOutOfService = 0;
    const watch = () => {
      lowestDesired = Math.min(lowestDesired, group.desiredCapacity);
      const out = local.instances().filter((instance) => instance.state !== 'InService').length;
      mostOutOfService = Math.max(mostOutOfService, out);
      for (const command of local.plane.ssm.commands()) {
        for (const invocation of command.invocations) {
          if (invocation.status === 'InProgress') {
            statesWhileDeploying.add(
              local.plane.autoScaling.instance(invocation.instanceId)?.state ?? 'gone',
            );
          }
        }
      }
    };

    const deploy = await operate(local, { action: 'deploy', group: GROUP_NAME, revision: 'master' });
    expect(deploy).toMatchObject({ phase: 'canary', summary: expect.stringContaining('enters Standby') });
    await local.waitFor(
      'the deployment to end',
      () => {
        watch();
        return (
          groupRecord<Deployment>(local, 'last-deployment')?.id === deploy.deploymentId &&
          !groupRecord(local, 'deployment')
        );
      },
      150_000,
    );
    await local.waitFor('every instance back InService', () => local.settled(), 30_000);

    expect(groupRecord<Deployment>(local, 'last-deployment')).toMatchObject({ phase: 'promoted', sha: head });
    expect(groupRecord<Release>(local, 'release')).toMatchObject({ sha: head });
    for (const instance of local.instances()) expect(local.revisionOf(instance.id)).toBe(head);
    // desired 3 above MinSize 2: one instance out of service at a time, each deployed in Standby.
    expect(statesWhileDeploying).toEqual(new Set(['Standby']));
    expect(mostOutOfService).toBe(1);
    expect(lowestDesired).toBe(2);
    const moves = group.activities.map((activity) => activity.description);
    expect(moves.filter((move) => move.startsWith('Moving EC2 instance to Standby'))).toHaveLength(3);
    expect(moves.filter((move) => move.startsWith('Moving EC2 instance out of Standby'))).toHaveLength(3);
    expect(group.desiredCapacity).toBe(3);

    // A bad commit: the canary fails in Standby, is restored there to the release, then returns.
    const bad = local.app?.commitFailingDeploy('after-publish');
    const failing = await operate(local, { action: 'deploy', group: GROUP_NAME, revision: String(bad) });
    await local.waitFor(
      'the failed deployment to end and its canary to be back InService at the release',
      () => {
        watch();
        const last = groupRecord<Deployment>(local, 'last-deployment');
        return (
          last?.id === failing.deploymentId &&
          last?.standby === undefined &&
          local.settled() &&
          local.revisionOf(String(failing.canary)) === head
        );
      },
      120_000,
    );
    expect(groupRecord<Deployment>(local, 'last-deployment')).toMatchObject({
      phase: 'failed',
      failures: [{ instanceId: failing.canary }],
    });
    expect(groupRecord<Release>(local, 'release')).toMatchObject({ sha: head });
    expect(statesWhileDeploying).toEqual(new Set(['Standby']));
    expect(lowestDesired).toBe(2);

    // At MinSize no instance may leave service: the deploy is refused, naming the sizes.
    local.scaleTo(2);
    await local.waitFor('2 instances InService', () => local.settled(), 60_000);
    await expect(
      operate(local, { action: 'deploy', group: GROUP_NAME, revision: 'master' }),
    ).rejects.toMatchObject({
      errorName: 'ActionRefusedError',
      message: expect.stringContaining('min-size=2, max-size=10, desired=2'),
    });
    expect(groupRecord(local, 'deployment')).toBeUndefined();
  });
});
