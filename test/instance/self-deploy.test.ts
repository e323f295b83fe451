/**
 * self-deploy.sh against a real sshd, a real bare git repository and real Capistrano, as an
 * unprivileged application user. The tests share one instance and run in order, as the
 * deploys of one instance's life would.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostPublicKeys } from '../../scripts/local/sshd';
import { type Instance, startInstance } from './instance';

jest.setTimeout(60_000);

let instance: Instance;
const deployed: string[] = [];

beforeAll(async () => {
  instance = await startInstance('sd-deploy');
});

afterAll(async () => {
  await instance?.stop();
});

/** Runs `command` as the application user (root tests) or directly (non-root tests). */
function asAppUser(command: string[], env: Record<string, string>) {
  const asUser = process.getuid?.() === 0 ? ['runuser', '-u', instance.user.name, '--'] : [];
  const [program, ...args] = [
    ...asUser,
    'env',
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    ...command,
  ];
  return spawnSync(program ?? 'env', args, { encoding: 'utf8', cwd: '/' });
}

test('first deploy: current is a release of the branch head, gems installed once', async () => {
  const run = await instance.run();

  expect(run.exitCode).toBe(0);
  expect(instance.currentRevision()).toBe(instance.app.head());
  expect(readFileSync(join(instance.appPath, 'current', 'app.txt'), 'utf8')).toBe('version 1\n');
  expect(instance.releases()).toHaveLength(1);
  expect(run.stdout).toContain('installing gems');
  expect(run.result).toMatchObject({
    status: 'success',
    exitCode: 0,
    revision: instance.app.head(),
    skipped: false,
    source: 'branch:master',
  });
  deployed.push(instance.app.head());
});

test('new commits move current; old releases are pruned to keep_releases', async () => {
  for (const message of ['Second version', 'Third version']) {
    const sha = instance.app.commit(message);

    const run = await instance.run();

    expect(run.exitCode).toBe(0);
    expect(instance.currentRevision()).toBe(sha);
    expect(run.stdout).toContain('Gemfile.lock unchanged');
    deployed.push(sha);
  }
  expect(readFileSync(join(instance.appPath, 'current', 'app.txt'), 'utf8')).toBe('version 3\n');
  expect(instance.releases()).toHaveLength(2); // keep_releases 2 in the sample app
});

test('the same revision again takes the fast path: no new release, result says skipped', async () => {
  const before = instance.releases();

  const run = await instance.run();

  expect(run.exitCode).toBe(0);
  expect(run.stdout).toContain('already deployed; skipping the deploy');
  expect(run.result).toMatchObject({ status: 'success', skipped: true, revision: deployed.at(-1) });
  expect(instance.releases()).toEqual(before);
});

test('an explicit older revision deploys that commit', async () => {
  const older = deployed[0] ?? '';

  const run = await instance.run({ SELFDEPLOY_REVISION: older.slice(0, 12) });

  expect(run.exitCode).toBe(0);
  expect(instance.currentRevision()).toBe(older);
  expect(readFileSync(join(instance.appPath, 'current', 'app.txt'), 'utf8')).toBe('version 1\n');
  expect(run.result).toMatchObject({ revision: older, source: 'explicit', skipped: false });
});

test('an unknown revision fails cleanly and leaves current untouched', async () => {
  const current = instance.currentRevision();
  const releases = instance.releases();

  const run = await instance.run({ SELFDEPLOY_REVISION: 'no-such-branch' });

  expect(run.exitCode).toBe(7);
  expect(run.stderr).toContain('revision no-such-branch is not a commit, branch or tag of origin');
  expect(run.result).toMatchObject({ status: 'failure', exitCode: 7 });
  expect(instance.currentRevision()).toBe(current);
  expect(instance.releases()).toEqual(releases);
});

test('the pinned revision comes from Parameter Store; the deploy key is written 0600 and never printed', async () => {
  const pinned = deployed[1] ?? '';
  const deployKey =
    '-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWRlcGxveS1rZXk=\n-----END OPENSSH PRIVATE KEY-----';
  const fakeAws = join(instance.dir, 'fake-aws');
  mkdirSync(fakeAws, { recursive: true });
  writeFileSync(join(instance.dir, 'deploy-key'), `${deployKey}\n`);
  // The AWS CLI as self-deploy.sh calls it: ssm get-parameter --name NAME ... --output text.
  writeFileSync(
    join(fakeAws, 'aws'),
    [
      '#!/bin/sh',
      'case "$*" in',
      `*"--name /sample/production/revision "*) echo ${pinned} ;;`,
      `*"--name /sample/deploy-key "*"--with-decryption"*) cat ${join(instance.dir, 'deploy-key')} ;;`,
      '*) echo "An error occurred (ParameterNotFound) when calling the GetParameter operation" >&2; exit 254 ;;',
      'esac',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  const env = {
    PATH: `${fakeAws}:${process.env.PATH}`,
    SELFDEPLOY_PINNED_REVISION_PARAMETER: '/sample/{environment}/revision',
    SELFDEPLOY_DEPLOY_KEY_PARAMETER: '/sample/deploy-key',
  };

  const pinnedRun = await instance.run(env);
  const notPinned = await instance.run({
    ...env,
    SELFDEPLOY_ENVIRONMENT: 'staging',
    SELFDEPLOY_BRANCHES: 'staging=master',
  });

  expect(pinnedRun.exitCode).toBe(0);
  expect(pinnedRun.result).toMatchObject({ revision: pinned, source: 'pinned:/sample/production/revision' });
  expect(notPinned.exitCode).toBe(0);
  expect(notPinned.stdout).toContain('no pinned revision (/sample/staging/revision does not exist)');
  expect(notPinned.result).toMatchObject({ revision: instance.app.head(), source: 'branch:master' });
  const keyPath = join(instance.user.home, '.ssh', 'selfdeploy_deploy_key');
  expect(readFileSync(keyPath, 'utf8')).toBe(`${deployKey}\n`);
  expect(statSync(keyPath).mode & 0o777).toBe(0o600);
  expect(statSync(keyPath).uid).toBe(instance.user.uid);
  for (const output of [pinnedRun.stdout, pinnedRun.stderr, notPinned.stdout, notPinned.stderr]) {
    expect(output).not.toContain('c2VjcmV0LWRlcGxveS1rZXk=');
  }
});

test('two runs at once are serialised by the lock and both end correctly', async () => {
  const sha = instance.app.commit('Fourth version');
  const releases = instance.releases().length;

  const runs = await Promise.all([instance.run(), instance.run()]);

  expect(runs.map((run) => run.exitCode)).toEqual([0, 0]);
  expect(runs.map((run) => run.result.skipped).sort()).toEqual([false, true]);
  expect(runs.some((run) => run.stdout.includes('another self-deploy is running; waiting'))).toBe(true);
  expect(instance.currentRevision()).toBe(sha);
  expect(instance.releases().length).toBeLessThanOrEqual(Math.max(releases, 2));
  deployed.push(sha);
});

test('a run gives up with exit code 4 when the lock stays taken', async () => {
  // Its own process group: stopping it must stop the sleep that holds the lock too.
  const held = join(instance.stateDir, 'lock-held-by-test');
  rmSync(held, { force: true });
  const holder = spawn(
    'flock',
    [join(instance.stateDir, 'lock'), 'sh', '-c', 'touch "$0" && exec sleep 30', held],
    {
      stdio: 'ignore',
      detached: true,
    },
  );
  // Start the run only once the holder really has the lock.
  for (let waited = 0; !existsSync(held); waited += 20) {
    if (waited > 10_000) throw new Error('the lock holder never took the lock');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  try {
    const run = await instance.run({ SELFDEPLOY_LOCK_TIMEOUT: '1' });

    expect(run.exitCode).toBe(4);
    expect(run.stderr).toContain('still held');
  } finally {
    process.kill(-(holder.pid ?? 0), 'SIGKILL');
  }
});

test('new host keys (a new instance from the image): strict checking stays on, the stale entry is replaced', async () => {
  const knownHosts = join(instance.user.home, '.ssh', 'selfdeploy_known_hosts');
  await instance.sshd.regenerateHostKeys();
  writeFileSync(
    knownHosts,
    `${readFileSync(knownHosts, 'utf8')}[127.0.0.1]:${instance.sshd.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBogusBogusBogusBogusBogusBogusBogusBogusBog\n`,
  );
  execFileSync('chown', [`${instance.user.uid}:${instance.user.gid}`, knownHosts]);
  // Capistrano itself, with the stale known_hosts, refuses to talk to the changed host.
  const stale = asAppUser(
    ['sh', '-c', `cd ${instance.deployPath} && bundle exec cap local_production deploy:check`],
    {
      HOME: instance.user.home,
      PATH: process.env.PATH ?? '',
      SELFDEPLOY_APP_USER: instance.user.name,
      SELFDEPLOY_SSH_PORT: String(instance.sshd.port),
      SELFDEPLOY_SSH_KEY: join(instance.user.home, '.ssh', 'selfdeploy_localhost'),
      SELFDEPLOY_KNOWN_HOSTS: knownHosts,
      SELFDEPLOY_GIT_SSH: join(instance.user.home, '.ssh', 'selfdeploy_git_ssh'),
      SELFDEPLOY_GIT_SSH_COMMAND: join(instance.user.home, '.ssh', 'selfdeploy_git_ssh'),
      SELFDEPLOY_MIGRATE: 'false',
      SELFDEPLOY_REVISION: deployed.at(-1) ?? '',
      SELFDEPLOY_APP_PATH: instance.appPath,
    },
  );
  expect(stale.status).not.toBe(0);
  expect(`${stale.stdout}${stale.stderr}`).toMatch(/fingerprint .* does not match/);
  const sha = instance.app.commit('Fifth version');

  const run = await instance.run();

  expect(run.exitCode).toBe(0);
  expect(instance.currentRevision()).toBe(sha);
  const trusted = readFileSync(knownHosts, 'utf8').trim().split('\n');
  const expected = hostPublicKeys(instance.sshd.hostKeyDir).map((key) =>
    key.split(' ').slice(0, 2).join(' '),
  );
  expect(trusted.map((line) => line.split(' ').slice(1).join(' ')).sort()).toEqual(expected.sort());
  expect(trusted.every((line) => line.startsWith(`[127.0.0.1]:${instance.sshd.port},`))).toBe(true);
});

test('the localhost key is only accepted from loopback, with forwarding and pty disabled', () => {
  const authorized = readFileSync(join(instance.user.home, '.ssh', 'authorized_keys'), 'utf8')
    .trim()
    .split('\n');

  const ours = authorized.filter((line) => line.endsWith(' selfdeploy-localhost'));

  expect(ours).toHaveLength(1);
  expect(ours[0]).toMatch(
    /^from="127\.0\.0\.1,::1",no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-pty ecdsa-sha2-nistp256 /,
  );
});

test('sshd itself refuses the localhost key from any other address, and refuses port forwarding with it', () => {
  const ssh = (...options: string[]) =>
    asAppUser(
      [
        'ssh',
        '-p',
        String(instance.sshd.port),
        '-i',
        join(instance.user.home, '.ssh', 'selfdeploy_localhost'),
        '-o',
        `UserKnownHostsFile=${join(instance.user.home, '.ssh', 'selfdeploy_known_hosts')}`,
        '-o',
        'StrictHostKeyChecking=yes',
        '-o',
        'BatchMode=yes',
        '-o',
        'IdentitiesOnly=yes',
        ...options,
        `${instance.user.name}@127.0.0.1`,
        'echo connected',
      ],
      { HOME: instance.user.home, PATH: process.env.PATH ?? '' },
    );

  // 127.0.0.2 is still this machine, but not an address the key's from= option names.
  const fromLoopback = ssh();
  const fromElsewhere = ssh('-b', '127.0.0.2');
  // The test sshd allows forwarding (OpenSSH's default); only the key's options refuse it.
  const forwarding = ssh('-o', 'ExitOnForwardFailure=yes', '-R', '0:127.0.0.1:22');

  expect(fromLoopback.stdout).toContain('connected');
  expect(fromElsewhere.status).toBe(255);
  expect(fromElsewhere.stderr).toContain('Permission denied');
  expect(forwarding.status).toBe(255);
  expect(forwarding.stderr).toContain('remote port forwarding failed');
});

test('a failing deploy task exits 9 with the error tail, and current stays where it was', async () => {
  const current = instance.currentRevision();
  instance.app.commitFailingDeploy();

  const run = await instance.run();

  expect(run.exitCode).toBe(9);
  expect(run.stderr).toContain('sample deploy task failed on purpose');
  expect(run.stderr).toContain(`deploy command exited with 1; current still is ${current}`);
  expect(run.result).toMatchObject({ status: 'failure', exitCode: 9, skipped: false });
  expect(instance.currentRevision()).toBe(current);
});
