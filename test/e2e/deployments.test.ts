import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Deployment, Release } from '../../functions/shared/operator-actions';
import { APP_PATH, GROUP_NAME, type LocalRun } from '../../scripts/local/local-run';
import { CAPFILE_WITH_TASKS, groupRecord, localRuns, operate } from './support';

// Operator deployments through the local control plane and the real handler: real deploys
// (bash, self-deploy.sh, Capistrano over a loopback sshd, git), state in the stand-in's
// Parameter Store, phases moved on by the commands' status events.
jest.setTimeout(180_000);

const start = localRuns();

/** Waits until the deployment `id` has ended; the group's last deployment. */
async function ended(local: LocalRun, id: unknown): Promise<Deployment> {
  await local.waitFor(
    `deployment ${String(id)} to end`,
    () => groupRecord<Deployment>(local, 'last-deployment')?.id === id && !groupRecord(local, 'deployment'),
    120_000,
  );
  return groupRecord<Deployment>(local, 'last-deployment') as Deployment;
}

/** The migrations an instance's deploys ran (the sample's db-role task logs each revision). */
function migrationsOn(local: LocalRun, instanceId: string): string[] {
  const path = join(local.dir, 'instances', instanceId, APP_PATH, 'shared', 'migrations.log');
  return existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n') : [];
}

/** A commit whose deploy runs a "migration" on the instances with the db role: it logs its revision. */
function commitWithMigration(local: LocalRun): string {
  const app = local.app;
  if (!app) throw new Error('real deploys only');
  return app.commit('A migration', {
    'lib/capistrano/tasks/migrate.rake': [
      'namespace :deploy do',
      '  task :migrate do',
      '    on roles(:db) do',
      '      execute :echo, fetch(:current_revision), ">>", shared_path.join("migrations.log")',
      '    end',
      '  end',
      '  after :updated, :migrate',
      'end',
      '',
    ].join('\n'),
    Capfile: CAPFILE_WITH_TASKS,
  });
}

describe('operator deployments through the local control plane', () => {
  it('deploys canary first, migrating there only, then the rest, and promotes; a failing canary leaves the release and is restored; rollback', async () => {
    const local = await start();
    local.scaleTo(3);
    await local.waitFor('3 instances InService', () => local.settled(), 60_000);
    const first = local.app?.head();

    // The first release: the branch, resolved by the canary.
    const initial = await operate(local, { action: 'deploy', group: GROUP_NAME, revision: 'master' });
    expect(initial).toMatchObject({
      action: 'deploy',
      phase: 'canary',
      deploymentId: expect.stringMatching(/^d-/),
    });
    expect(await ended(local, initial.deploymentId)).toMatchObject({ phase: 'promoted', sha: first });
    expect(groupRecord<Release>(local, 'release')).toMatchObject({ sha: first });

    // A new commit with a migration: canary, rest, promoted; the migration ran on the canary only.
    const second = commitWithMigration(local);
    const deploy = await operate(local, { action: 'deploy', group: GROUP_NAME, revision: second });
    await expect(
      operate(local, { action: 'deploy', group: GROUP_NAME, revision: 'master' }),
    ).rejects.toMatchObject({
      errorName: 'DeploymentInProgressError',
      message: expect.stringContaining(String(deploy.deploymentId)),
    });
    expect(await ended(local, deploy.deploymentId)).toMatchObject({ phase: 'promoted', sha: second });
    expect(groupRecord<Release>(local, 'release')).toMatchObject({ sha: second, previous: first });
    const ids = local.instances().map((instance) => instance.id);
    for (const id of ids) expect(local.revisionOf(id)).toBe(second);
    expect(ids.filter((id) => migrationsOn(local, id).includes(second))).toEqual([deploy.canary]);

    // A bad commit: the canary fails, the rest never get it, the release stays, the canary is restored.
    const bad = local.app?.commitFailingDeploy('after-publish');
    const failing = await operate(local, { action: 'deploy', group: GROUP_NAME, revision: String(bad) });
    const failed = await ended(local, failing.deploymentId);
    expect(failed).toMatchObject({ phase: 'failed', failures: [{ instanceId: failing.canary }] });
    expect(failed.failures[0]?.exitCode).toEqual(expect.any(Number));
    expect(groupRecord<Release>(local, 'release')).toMatchObject({ sha: second });
    expect(failed.commands.filter((command) => command.phase === 'failed')).toHaveLength(1);
    await local.waitFor(
      'the canary restored to the release',
      () => local.revisionOf(String(failing.canary)) === second,
      60_000,
    );
    for (const id of ids) expect(local.revisionOf(id)).toBe(second);
    expect(
      local.plane.ssm.commands().filter((command) => command.parameters.revision?.[0] === bad),
    ).toHaveLength(1);

    // A scale-out now deploys the release, not the bad branch head.
    local.scaleTo(4);
    await local.waitFor('4 instances InService', () => local.settled(), 60_000);
    const joined = local.instances().find((instance) => !ids.includes(instance.id));
    expect(local.revisionOf(joined?.id ?? '')).toBe(second);
    // Every instance's EC2 tag names the SHA it runs.
    await local.idle(30_000);
    for (const instance of local.instances()) {
      const tag = local.plane.ec2
        .tags()
        .find((found) => found.resourceId === instance.id && found.key === 'selfdeploy:revision');
      expect(tag?.value).toBe(second);
    }

    // Rollback: the previous release, canary first, promoted.
    const rollback = await operate(local, { action: 'rollback', group: GROUP_NAME, reason: 'e2e' });
    expect(rollback).toMatchObject({ action: 'rollback', sha: first });
    expect(await ended(local, rollback.deploymentId)).toMatchObject({ kind: 'rollback', phase: 'promoted' });
    expect(groupRecord<Release>(local, 'release')).toMatchObject({ sha: first, previous: second });
    for (const instance of local.instances()) expect(local.revisionOf(instance.id)).toBe(first);

    // The failed run is among the canary's newest, with the script's result line in its tail.
    const logs = await operate(local, { action: 'logs', group: GROUP_NAME, instanceId: failing.canary });
    expect(logs).toMatchObject({
      runs: expect.arrayContaining([
        expect.objectContaining({
          status: 'Failed',
          outputTail: expect.stringContaining('SELFDEPLOY_RESULT'),
        }),
      ]),
    });
  });

  it('outlives the invocation that started it: a deploy longer than the function timeout ends promoted', async () => {
    const timeoutSeconds = 4;
    const local = await start({ functionTimeoutSeconds: timeoutSeconds });
    local.scaleTo(2);
    await local.waitFor('2 instances InService', () => local.settled(), 60_000);
    // Each instance's deploy of this commit takes longer than an invocation may run.
    const slow = local.app?.commit('A slow deploy', {
      'lib/capistrano/tasks/slow.rake': `namespace :deploy do\n  task :slow do\n    on roles(:app) do\n      execute :sleep, ${timeoutSeconds + 1}\n    end\n  end\n  after :updated, :slow\nend\n`,
      Capfile: CAPFILE_WITH_TASKS,
    });

    const started = Date.now();
    const answer = await operate(local, { action: 'deploy', group: GROUP_NAME, revision: String(slow) });
    const answeredMs = Date.now() - started;
    const deployment = await ended(local, answer.deploymentId);

    expect(answeredMs).toBeLessThan(timeoutSeconds * 1000);
    expect(deployment).toMatchObject({ phase: 'promoted', sha: slow });
    expect(Date.parse(deployment.updatedAt) - Date.parse(deployment.requestedAt)).toBeGreaterThan(
      2 * timeoutSeconds * 1000,
    );
    for (const instance of local.instances()) expect(local.revisionOf(instance.id)).toBe(slow);
  });
});
