import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { GroupStatus } from '../../functions/shared/operator-actions';
import { CLI_EXIT_CODES } from '../../scripts/cli/exit-codes';
import { GROUP_NAME, type LocalRun } from '../../scripts/local/local-run';
import { FUNCTION_NAME } from '../../scripts/local/orchestrator';
import { localRuns, startLocal, waitForOutput } from './support';

// `npx selfdeploy`, run as an operator runs it, against the local control plane's Lambda Invoke
// API and the real orchestrator behind it: real deploys (Capistrano over a loopback sshd, git).
jest.setTimeout(300_000);

const ROOT = join(__dirname, '..', '..');

const start = localRuns();

interface Ran {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** `npx selfdeploy …` from the clone, with a local run's settings as its only AWS settings. */
function selfdeploy(local: LocalRun, args: readonly string[]): Promise<Ran> {
  return npxSelfdeploy({ ...local.plane.env(), SELFDEPLOY_FUNCTION: FUNCTION_NAME }, args);
}

function npxSelfdeploy(settings: Readonly<Record<string, string>>, args: readonly string[]): Promise<Ran> {
  const child = spawn('npx', ['--no', 'selfdeploy', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...settings },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

async function status(local: LocalRun): Promise<GroupStatus> {
  const ran = await selfdeploy(local, ['status', '--group', GROUP_NAME, '--json']);
  expect(ran).toMatchObject({ code: CLI_EXIT_CODES.success.code, stderr: '' });
  return JSON.parse(ran.stdout);
}

/** The RESULT column of a followed deployment's table, per instance. */
function results(stdout: string): Record<string, string> {
  return Object.fromEntries(
    stdout.split('\n').flatMap((line) => {
      const match = /^(i-[0-9a-f]+) +\S+ +(deployed|failed|kept release|not deployed)/.exec(line);
      return match ? [[match[1], match[2]]] : [];
    }),
  );
}

describe('the selfdeploy CLI against a local control plane', () => {
  it('shows status, follows a deploy to promotion, is refused a second deploy, and rolls back', async () => {
    const local = await start();
    const app = local.app;
    if (app === undefined) throw new Error('the local run has no application repository');
    local.scaleTo(2);
    await local.waitFor('2 instances InService', () => local.settled(), 90_000);
    const first = app.head();
    const ids = local.instances().map((i) => i.id);

    const before = await status(local);
    expect(before.instances.map((i) => [i.instanceId, i.sha])).toEqual(ids.map((id) => [id, first]));

    const second = app.commit('Second release', { VERSION: '2\n' });
    const deploy = await selfdeploy(local, [
      'deploy',
      second,
      '--group',
      GROUP_NAME,
      '--reason',
      'second release',
      '--interval',
      '0.5',
    ]);

    expect(deploy.stderr).toBe('');
    expect(deploy.code).toBe(CLI_EXIT_CODES.success.code);
    expect(deploy.stdout).toContain(': promoted');
    expect(results(deploy.stdout)).toEqual(Object.fromEntries(ids.map((id) => [id, 'deployed'])));
    for (const id of ids) expect(local.revisionOf(id)).toBe(second);

    const third = app.commit('Third release', { VERSION: '3\n' });
    const running = await selfdeploy(local, ['deploy', third, '--group', GROUP_NAME, '--no-wait']);
    expect(running.code).toBe(CLI_EXIT_CODES.success.code);
    const deploymentId = /d-[a-z2-7]{12}/.exec(running.stdout)?.[0];
    expect(deploymentId).toBeDefined();

    const refused = await selfdeploy(local, ['deploy', third, '--group', GROUP_NAME]);

    expect(refused.code).toBe(CLI_EXIT_CODES.failure.code);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(new RegExp(`^DeploymentInProgressError: .*${deploymentId}`));

    await local.waitFor(
      'the third release to be promoted',
      () => ids.every((id) => local.revisionOf(id) === third),
      120_000,
    );
    let promoted = await status(local);
    while (promoted.deployment !== undefined) promoted = await status(local);
    expect(promoted.release).toMatchObject({ sha: third, previous: second });

    const rollback = await selfdeploy(local, ['rollback', '--group', GROUP_NAME, '--interval', '0.5']);

    expect(rollback.code).toBe(CLI_EXIT_CODES.success.code);
    expect(results(rollback.stdout)).toEqual(Object.fromEntries(ids.map((id) => [id, 'deployed'])));
    for (const id of ids) expect(local.revisionOf(id)).toBe(second);
    const after = await status(local);
    expect(after.release).toMatchObject({ sha: second, previous: third });
    expect(after.instances.map((i) => [i.sha, i.drift])).toEqual(ids.map(() => [second, false]));
  });

  it('ends a failing deploy with the failed instance, its exit code and reason, and exits 1', async () => {
    const local = await start();
    const app = local.app;
    if (app === undefined) throw new Error('the local run has no application repository');
    local.scaleTo(2);
    await local.waitFor('2 instances InService', () => local.settled(), 90_000);
    const good = app.head();

    const bad = app.commitFailingDeploy();
    const deploy = await selfdeploy(local, ['deploy', bad, '--group', GROUP_NAME, '--interval', '0.5']);

    expect(deploy.code).toBe(CLI_EXIT_CODES.failure.code);
    const failed = deploy.stdout.split('\n').filter((line) => / failed +exit \d+: /.test(line));
    expect(failed).toHaveLength(1);
    for (const instance of local.instances()) expect(local.revisionOf(instance.id)).toBe(good);
    expect((await status(local)).release?.sha).toBe(good);
  });

  it('works with the settings `npm start -- --keep` prints', async () => {
    const run = startLocal(['--stand-in', '100', '--agent-delay', '2', '--instances', '2', '--keep']);
    try {
      await waitForOutput(run.output, 'waiting for Ctrl-C', 60_000);
      const settings = Object.fromEntries(
        [...run.output().matchAll(/^ {2}export (\w+)=(\S+)$/gm)].map(([, name = '', value = '']) => [
          name,
          value,
        ]),
      );
      expect(settings.AWS_ENDPOINT_URL_LAMBDA).toBeDefined();
      expect(settings.SELFDEPLOY_FUNCTION).toBe(FUNCTION_NAME);

      // Exactly what it prints, nothing added.
      const ran = await npxSelfdeploy(settings, ['status', '--group', GROUP_NAME]);

      expect(ran).toMatchObject({ code: CLI_EXIT_CODES.success.code, stderr: '' });
      expect(ran.stdout).toContain(`group       ${GROUP_NAME} (launches deploy the release)`);
      expect(ran.stdout.split('\n').filter((line) => / InService /.test(line))).toHaveLength(2);
    } finally {
      run.child.kill('SIGINT');
      await run.exit;
      const dir = /the run directory is kept: (\S+)/.exec(run.output())?.[1];
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  });
});
