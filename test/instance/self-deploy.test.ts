/**
 * self-deploy.sh against a real sshd, a real bare git repository and real Capistrano, as an
 * unprivileged application user. The tests share one instance and run in order, as the
 * deploys of one instance's life would.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { hostPublicKeys } from '../../scripts/local/sshd';
import {
  commitDeployTasks,
  FAILING_AFTER_PUBLISHING,
  type Instance,
  startInstance,
  userWritableDir,
  waitForFile,
} from './instance';

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

/**
 * A fake AWS CLI (as self-deploy.sh calls it: ssm get-parameter --name NAME ... --output text)
 * in its own directory: /sample/deploy-key holds `deployKeyFile`'s content, the pinned
 * revision parameter `pinned` when given, anything else does not exist.
 */
function fakeAws(name: string, deployKeyFile: string, pinned?: string): Record<string, string> {
  const bin = join(instance.dir, name);
  mkdirSync(bin, { recursive: true });
  chmodSync(bin, 0o755);
  writeFileSync(
    join(bin, 'aws'),
    [
      '#!/bin/sh',
      'case "$*" in',
      ...(pinned === undefined ? [] : [`*"--name /sample/production/revision "*) echo ${pinned} ;;`]),
      `*"--name /sample/deploy-key "*"--with-decryption"*) cat ${deployKeyFile} ;;`,
      '*) echo "An error occurred (ParameterNotFound) when calling the GetParameter operation" >&2; exit 254 ;;',
      'esac',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return { PATH: `${bin}:${process.env.PATH}`, SELFDEPLOY_DEPLOY_KEY_PARAMETER: '/sample/deploy-key' };
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
  expect(run.stdout).toContain('already deployed and verified; skipping the deploy');
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

test('the pinned revision comes from Parameter Store; the deploy key is never printed nor left on disk', async () => {
  const pinned = deployed[1] ?? '';
  const deployKey =
    '-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWRlcGxveS1rZXk=\n-----END OPENSSH PRIVATE KEY-----';
  writeFileSync(join(instance.dir, 'deploy-key'), `${deployKey}\n`);
  const env = {
    ...fakeAws('fake-aws', join(instance.dir, 'deploy-key'), pinned),
    SELFDEPLOY_PINNED_REVISION_PARAMETER: '/sample/{environment}/revision',
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
  expect(existsSync(join(instance.sshDir, 'deploy_key'))).toBe(false);
  expect(existsSync(join(instance.user.home, '.ssh', 'selfdeploy_deploy_key'))).toBe(false);
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
  const knownHosts = join(instance.sshDir, 'known_hosts');
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
      SELFDEPLOY_SSH_KEY: join(instance.sshDir, 'localhost_key'),
      SELFDEPLOY_KNOWN_HOSTS: knownHosts,
      SELFDEPLOY_GIT_SSH: join(instance.sshDir, 'git_ssh'),
      SELFDEPLOY_GIT_SSH_COMMAND: join(instance.sshDir, 'git_ssh'),
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

test('the localhost key is only accepted from loopback, restricted, and tagged with its state directory', () => {
  const authorized = readFileSync(join(instance.user.home, '.ssh', 'authorized_keys'), 'utf8')
    .trim()
    .split('\n');
  const tag = `selfdeploy-localhost-${createHash('sha256').update(instance.stateDir).digest('hex').slice(0, 12)}`;

  const ours = authorized.filter((line) => line.includes(' selfdeploy-localhost'));

  expect(ours).toHaveLength(1);
  expect(ours[0]).toMatch(
    /^restrict,from="127\.0\.0\.1,::1" ecdsa-sha2-nistp256 \S+ selfdeploy-localhost-[0-9a-f]{12}$/,
  );
  expect(ours[0]?.endsWith(` ${tag}`)).toBe(true);
});

test('sshd itself refuses the localhost key from any other address, and refuses port forwarding with it', () => {
  const ssh = (...options: string[]) =>
    asAppUser(
      [
        'ssh',
        '-p',
        String(instance.sshd.port),
        '-i',
        join(instance.sshDir, 'localhost_key'),
        '-o',
        `UserKnownHostsFile=${join(instance.sshDir, 'known_hosts')}`,
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
  expect(run.stderr).toContain(`deploy command exited with 1; current is still ${current}`);
  expect(run.result).toMatchObject({ status: 'failure', exitCode: 9, skipped: false });
  expect(instance.currentRevision()).toBe(current);
});

test('a failed post-publish task is deployed again, never skipped, and the failure says where current is now', async () => {
  const good = commitDeployTasks(instance, 'Good again', '');
  const first = await instance.run();
  const bad = commitDeployTasks(instance, 'Post-publish task that fails', FAILING_AFTER_PUBLISHING);

  const second = await instance.run();
  const third = await instance.run();

  expect(first.exitCode).toBe(0);
  expect(second.exitCode).toBe(9);
  expect(second.stderr).toContain('sample post-publish task failed on purpose');
  // Capistrano switched current before the task failed.
  expect(second.stderr).toContain(`deploy command exited with 1; current is now ${bad} (was ${good})`);
  expect(third.exitCode).toBe(9);
  expect(third.stdout).toContain('no complete success of it is recorded; deploying again');
  expect(third.result).toMatchObject({ status: 'failure', exitCode: 9, skipped: false });
  const fixed = commitDeployTasks(instance, 'Post-publish task fixed', '');
  expect((await instance.run()).exitCode).toBe(0);
  expect(instance.currentRevision()).toBe(fixed);
});

test('a health check that keeps failing ends with exit 12; once the app answers the deploy is verified', async () => {
  let healthy = false;
  let requests = 0;
  const server = createServer((_, response) => {
    requests += 1;
    response.statusCode = healthy ? 200 : 500;
    response.end(healthy ? 'ok' : 'not yet');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/up`;
  const env = {
    SELFDEPLOY_HEALTH_CHECK_URL: url,
    SELFDEPLOY_HEALTH_CHECK_ATTEMPTS: '2',
    SELFDEPLOY_HEALTH_CHECK_INTERVAL: '0',
  };
  try {
    const sha = commitDeployTasks(instance, 'Health-checked version', '');

    const failing = await instance.run(env);
    const failingRequests = requests;
    healthy = true;
    const passing = await instance.run(env);
    const again = await instance.run(env);

    expect(failing.exitCode).toBe(12);
    expect(failing.stderr).toContain(`health check of ${url} failed 2 times; last: curl: (22)`);
    expect(failing.stderr).toContain('500');
    expect(failing.result).toMatchObject({ status: 'failure', exitCode: 12, revision: sha });
    expect(failingRequests).toBe(2);
    // Not verified, so not skipped: deployed again, and verified this time.
    expect(passing.exitCode).toBe(0);
    expect(passing.result).toMatchObject({ status: 'success', skipped: false, revision: sha });
    expect(passing.stdout).toContain('health check passed (attempt 1)');
    // The fast path checks that the app still answers.
    expect(again.result).toMatchObject({ status: 'success', skipped: true });
    expect(requests).toBe(4);
  } finally {
    server.close();
  }
});

test('a second run for the same lifecycle wait exits 13 at once; a run for a new wait still waits its turn', async () => {
  const markers = userWritableDir(instance, 'same-wait');
  const started = join(markers, 'started');
  const release = join(markers, 'release');
  const sha = commitDeployTasks(instance, 'Deployed once per wait', '');
  const wait = {
    SELFDEPLOY_AUTO_SCALING_GROUP_NAME: 'web',
    SELFDEPLOY_LIFECYCLE_HOOK_NAME: 'selfdeploy-launch',
    SELFDEPLOY_INSTANCE_ID: 'i-0123456789abcdef0',
    SELFDEPLOY_LIFECYCLE_ACTION_TOKEN: '11111111-2222-3333-4444-555555555555',
    // Only so that a run which does wait cannot hang the test.
    SELFDEPLOY_LOCK_TIMEOUT: '20',
  };
  const first = instance.run({
    ...wait,
    SELFDEPLOY_DEPLOY_COMMAND: `touch ${started} && while [ ! -e ${release} ]; do sleep 0.1; done && bundle exec cap "local_$SELFDEPLOY_ENVIRONMENT" deploy`,
  });
  await waitForFile(started);

  const began = Date.now();
  const duplicate = await instance.run(wait);
  const withoutToken = await instance.run({ ...wait, SELFDEPLOY_LIFECYCLE_ACTION_TOKEN: '' });
  const seconds = (Date.now() - began) / 1000;
  let waiting: () => void = () => undefined;
  const newWaitWaits = new Promise<void>((resolve) => {
    waiting = resolve;
  });
  const newWait = instance.run(
    { ...wait, SELFDEPLOY_LIFECYCLE_ACTION_TOKEN: '66666666-7777-8888-9999-000000000000' },
    (stdout) => {
      if (stdout.includes('another self-deploy is running; waiting')) waiting();
    },
  );
  // The first run goes on only once the run for the new wait waits for the lock.
  await newWaitWaits;
  writeFileSync(release, '');
  const [firstRun, newWaitRun] = await Promise.all([first, newWait]);

  expect(duplicate.exitCode).toBe(13);
  expect(duplicate.stderr).toContain(
    'another self-deploy for this lifecycle wait (group web, hook selfdeploy-launch) is in progress; its result decides',
  );
  expect(duplicate.result).toMatchObject({ status: 'failure', exitCode: 13 });
  expect(withoutToken.exitCode).toBe(13);
  expect(seconds).toBeLessThan(10);
  expect(firstRun.exitCode).toBe(0);
  expect(newWaitRun.exitCode).toBe(0);
  expect(newWaitRun.result).toMatchObject({ skipped: true, revision: sha });
});

test('no process run as the application user (git included) holds the lock', async () => {
  const probe = userWritableDir(instance, 'fd-probe');
  const bin = join(instance.dir, 'fd-probe-bin');
  mkdirSync(bin, { recursive: true });
  chmodSync(bin, 0o755);
  const realGit = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();
  // git's detached gc --auto would inherit what git has open.
  writeFileSync(
    join(bin, 'git'),
    `#!/bin/sh\nfor fd in /proc/$$/fd/*; do readlink "$fd"; done >>${join(probe, 'fds')} 2>/dev/null\nexec ${realGit} "$@"\n`,
    { mode: 0o755 },
  );
  commitDeployTasks(instance, 'Probed version', '');

  const run = await instance.run({ PATH: `${bin}:${process.env.PATH}` });

  expect(run.exitCode).toBe(0);
  const open = readFileSync(join(probe, 'fds'), 'utf8').trim().split('\n');
  expect(open.length).toBeGreaterThan(0);
  expect(open.filter((path) => path.startsWith(instance.stateDir))).toEqual([]);
});

test("a user's core.sshCommand cannot take git's ssh over: the fetch keeps strict host key checks", async () => {
  const port = instance.sshd.port;
  const keyFile = join(instance.dir, 'git-deploy-key');
  // The localhost key is authorized for this user: as good a deploy key as any for git over ssh.
  writeFileSync(keyFile, readFileSync(join(instance.sshDir, 'localhost_key')));
  const trusted = hostPublicKeys(instance.sshd.hostKeyDir)
    .map((key) => `[127.0.0.1]:${port} ${key.split(' ').slice(0, 2).join(' ')}`)
    .join('\n');
  const bogus = `[127.0.0.1]:${port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBogusBogusBogusBogusBogusBogusBogusBogusBog`;
  const env = { ...fakeAws('fake-aws-git', keyFile), SELFDEPLOY_GIT_KNOWN_HOSTS: trusted };
  const userEnv = { HOME: instance.user.home, PATH: process.env.PATH ?? '' };
  const git = (...args: string[]) => {
    const result = asAppUser(['git', '-C', instance.deployPath, ...args], userEnv);
    if (result.status !== 0) throw new Error(`git ${args.join(' ')}: ${result.stderr}`);
  };
  // As root the user's own global config; as a developer, the checkout's (theirs too).
  const root = process.getuid?.() === 0;
  const setSshCommand = (command: string) =>
    root
      ? asAppUser(['git', 'config', '--global', 'core.sshCommand', command], userEnv)
      : git('config', 'core.sshCommand', command);
  const origin = instance.app.repoPath;
  git('remote', 'set-url', 'origin', `ssh://${instance.user.name}@127.0.0.1:${port}${origin}`);
  try {
    setSshCommand('echo core.sshCommand was used >&2; exit 1');
    const loud = await instance.run(env);
    setSshCommand(
      `ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -i ${join(instance.sshDir, 'deploy_key')}`,
    );
    const unchecked = await instance.run({ ...env, SELFDEPLOY_GIT_KNOWN_HOSTS: bogus });

    expect(loud.exitCode).toBe(0);
    expect(`${loud.stdout}${loud.stderr}`).not.toContain('core.sshCommand was used');
    expect(unchecked.exitCode).toBe(7);
    expect(unchecked.stderr).toContain('git fetch in');
  } finally {
    git('remote', 'set-url', 'origin', origin);
    if (root) asAppUser(['git', 'config', '--global', '--unset', 'core.sshCommand'], userEnv);
    else git('config', '--unset', 'core.sshCommand');
  }
});

test('deploy_to below a symbolic link is refused before root creates anything there', async () => {
  const elsewhere = userWritableDir(instance, 'elsewhere');
  const link = join(instance.dir, 'linked');
  symlinkSync(elsewhere, link);

  const run = await instance.run({ SELFDEPLOY_APP_PATH: join(link, 'app') });

  expect(run.exitCode).toBe(3);
  expect(run.stderr).toContain(`${link} is a symbolic link`);
  expect(existsSync(join(elsewhere, 'app'))).toBe(false);
});

test("the deploy key is the user's, 0600, while the deploy runs, and removed when the run fails", async () => {
  const probe = join(userWritableDir(instance, 'key-probe'), 'mode');
  writeFileSync(join(instance.dir, 'deploy-key-2'), 'not really a key\n');
  const current = instance.currentRevision();

  const run = await instance.run({
    ...fakeAws('fake-aws-key', join(instance.dir, 'deploy-key-2')),
    SELFDEPLOY_REVISION: deployed[0] ?? '',
    SELFDEPLOY_DEPLOY_COMMAND: `stat -c '%a %u' "$(dirname "$SELFDEPLOY_SSH_KEY")/deploy_key" >${probe}; exit 1`,
  });

  expect(run.exitCode).toBe(9);
  expect(readFileSync(probe, 'utf8')).toBe(`600 ${instance.user.uid}\n`);
  expect(existsSync(join(instance.sshDir, 'deploy_key'))).toBe(false);
  expect(instance.currentRevision()).toBe(current);
});

test('an application user with sudo rights is refused (as root) unless allowed', async () => {
  const bin = join(instance.dir, 'fake-sudo');
  mkdirSync(bin, { recursive: true });
  chmodSync(bin, 0o755);
  // sudo -n -l -U USER as sudo answers for a user with a rule (LC_ALL=C).
  writeFileSync(
    join(bin, 'sudo'),
    `#!/bin/sh\n[ "$*" = "-n -l -U ${instance.user.name}" ] || exit 1\nprintf 'User %s may run the following commands on this-host:\n    (ALL) NOPASSWD: ALL\n' "$4"\n`,
    { mode: 0o755 },
  );
  const path = `${bin}:${process.env.PATH}`;

  const refused = await instance.run({ PATH: path });
  const allowed = await instance.run({ PATH: path, SELFDEPLOY_ALLOW_SUDO: '1' });

  if (process.getuid?.() === 0) {
    expect(refused.exitCode).toBe(2);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
    expect(refused.stderr).toContain(
      `application user ${instance.user.name} has sudo rights (sudo -l -U ${instance.user.name} lists rules for it)`,
    );
  } else {
    // Not root: the caller is the application user, and a developer's own sudo is theirs.
    expect(refused.exitCode).toBe(0);
  }
  expect(allowed.exitCode).toBe(0);
});
