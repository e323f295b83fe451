import { RELEASE_CACHE_MS } from '../../functions/orchestrator/release-store';
import type { GroupStatus, OperatorAnswer, Release } from '../../functions/shared/operator-actions';
import type { LocalRun } from '../../scripts/local/local-run';
import { localRuns } from './support';

// Releases through the local control plane and the real handler: real deploys (bash,
// self-deploy.sh, Capistrano over a loopback sshd, git), Parameter Store and EC2 tags in the stand-in.
jest.setTimeout(120_000);

const start = localRuns();

async function operate(local: LocalRun, action: Record<string, unknown>): Promise<OperatorAnswer> {
  const answer = (await local.orchestrator.invoke({ group: 'web', ...action })) as { result: OperatorAnswer };
  return answer.result;
}

const tagsOf = (local: LocalRun, instanceId: string) =>
  Object.fromEntries(
    local.plane.ec2
      .tags()
      .filter((tag) => tag.resourceId === instanceId)
      .map((tag) => [tag.key, tag.value]),
  );

describe('releases through the local control plane', () => {
  it('the first scale-out records the release and tags its instance; a bad push then does not reach scale-outs', async () => {
    const local = await start();
    const good = local.app?.head();
    local.scaleTo(1);
    await local.waitFor('the first instance InService', () => local.settled(), 60_000);
    const [first] = local.instances();
    await local.waitFor(
      'its tags',
      () => tagsOf(local, first?.id ?? '')['selfdeploy:revision'] === good,
      10_000,
    );

    const release = (await operate(local, { action: 'release' })) as { release?: Release };
    expect(release.release).toMatchObject({ sha: good, reason: 'first deploy' });
    expect(tagsOf(local, first?.id ?? '')['selfdeploy:last-deploy']).toMatch(
      new RegExp(`^success 0 \\S+ ${good}$`),
    );

    const bad = local.app?.commitFailingDeploy('before-publish');
    local.scaleTo(2);
    await local.waitFor('the second instance InService', () => local.settled(), 60_000);

    for (const instance of local.instances()) {
      expect(local.revisionOf(instance.id)).toBe(good);
      expect(local.revisionOf(instance.id)).not.toBe(bad);
    }
    const second = local.plane.ssm.commands().at(-1);
    expect(second?.parameters.revision).toEqual([good]);

    const status = (await operate(local, { action: 'status' })) as GroupStatus;
    expect(status.release?.sha).toBe(good);
    expect(status.instances).toHaveLength(2);
    for (const instance of status.instances) {
      expect(instance).toMatchObject({
        lifecycleState: 'InService',
        agent: 'Online',
        sha: good,
        drift: false,
      });
    }
  });

  it('a paused group lets a scale-out into service without a deploy, until resumed', async () => {
    const local = await start();
    const paused = await operate(local, { action: 'pause', reason: 'deploys are broken' });
    expect(paused).toMatchObject({ action: 'pause', paused: true });

    local.scaleTo(1);
    await local.waitFor('the instance InService', () => local.settled(), 60_000);

    const [instance] = local.instances();
    expect(local.records.get(instance?.id ?? '')).toMatchObject({ result: 'CONTINUE' });
    expect(local.plane.ssm.commands()).toHaveLength(0);
    expect(local.revisionOf(instance?.id ?? '')).toBeUndefined();

    // A resume reaches launches once every execution environment's cached record is stale.
    const resumed = await operate(local, { action: 'resume' });
    expect(resumed).toMatchObject({
      summary: expect.stringContaining(`within ${RELEASE_CACHE_MS / 1000} s`),
    });
    await new Promise((resolve) => setTimeout(resolve, RELEASE_CACHE_MS));
    local.scaleTo(2);
    await local.waitFor('the second instance InService', () => local.settled(), 60_000);
    expect(local.plane.ssm.commands()).toHaveLength(1);
    // The first release is recorded just after the action completes.
    await local.waitFor(
      'the first release recorded',
      () =>
        local.plane.ssm.parametersByPath('/selfdeploy/web', false).some((p) => p.name.endsWith('/release')),
      10_000,
    );
    const status = (await operate(local, { action: 'status' })) as GroupStatus;
    const drifted = status.instances.filter((entry) => entry.drift).map((entry) => entry.instanceId);
    expect(drifted).toEqual([instance?.id]);
  });
});
