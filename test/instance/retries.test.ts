/**
 * The network steps of self-deploy.sh (git fetch, asking origin for its default branch,
 * Parameter Store reads) are tried again after a failure that may pass, a bounded number of
 * times; what no retry changes fails at once. Real git over a real sshd; the AWS CLI is a
 * fake that answers as the real one does. The tests share one instance and run in order.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostPublicKeys } from '../../scripts/local/sshd';
import { type Instance, runScript, SCRIPT, startInstance, userWritableDir } from './instance';

jest.setTimeout(90_000);

let instance: Instance;

beforeAll(async () => {
  instance = await startInstance('sd-retry');
});

afterAll(async () => {
  await instance?.stop();
});

/** A directory holding `command` as the sh `script`, put first on `path`. */
function withCommand(name: string, command: string, script: string, path = process.env.PATH ?? ''): string {
  const bin = join(instance.dir, name);
  mkdirSync(bin, { recursive: true });
  chmodSync(bin, 0o755);
  writeFileSync(join(bin, command), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
  return `${bin}:${path}`;
}

const THROTTLED =
  'An error occurred (ThrottlingException) when calling the GetParameter operation (reached max retries: 0): Rate exceeded';
const NO_CONNECTION = 'Could not connect to the endpoint URL: "https://ssm.eu-west-1.amazonaws.com/"';
const ACCESS_DENIED =
  'An error occurred (AccessDeniedException) when calling the GetParameter operation: User: arn:aws:sts::123456789012:assumed-role/web/i-0123456789abcdef0 is not authorized to perform: ssm:GetParameter';

/**
 * A fake AWS CLI (as self-deploy.sh calls it: ssm get-parameter --name NAME ...) that logs
 * each request to FAKE_AWS_CALLS as "NAME AWS_MAX_ATTEMPTS=<value>" and fails the first
 * FAKE_AWS_FAILURES requests for each name with FAKE_AWS_ERROR. Then /sample/deploy-key
 * holds FAKE_AWS_DEPLOY_KEY's content, /sample/production/revision FAKE_AWS_PINNED, and
 * nothing else exists.
 */
const FAKE_AWS = `name='' previous=''
for arg in "$@"; do
  [ "$previous" != --name ] || name=$arg
  previous=$arg
done
echo "$name AWS_MAX_ATTEMPTS=\${AWS_MAX_ATTEMPTS:-}" >>"$FAKE_AWS_CALLS"
if [ "$(grep -c "^$name " "$FAKE_AWS_CALLS")" -le "\${FAKE_AWS_FAILURES:-0}" ]; then
  printf '\\n%s\\n' "$FAKE_AWS_ERROR" >&2
  exit "\${FAKE_AWS_STATUS:-254}"
fi
case "$name" in
/sample/deploy-key) cat "$FAKE_AWS_DEPLOY_KEY" ;;
/sample/production/revision) printf '%s\\n' "$FAKE_AWS_PINNED" ;;
*) printf '\\nAn error occurred (ParameterNotFound) when calling the GetParameter operation: \\n' >&2; exit 254 ;;
esac`;

/** The fake AWS CLI's environment; its requests are logged to a new file named `calls`. */
function fakeAws(calls: string, settings: Record<string, string> = {}): Record<string, string> {
  const log = join(instance.dir, calls);
  rmSync(log, { force: true });
  const deployKey = join(instance.dir, 'deploy-key');
  if (!existsSync(deployKey)) writeFileSync(deployKey, 'not really a key\n');
  return {
    PATH: withCommand('fake-aws', 'aws', FAKE_AWS),
    FAKE_AWS_CALLS: log,
    FAKE_AWS_DEPLOY_KEY: deployKey,
    SELFDEPLOY_DEPLOY_KEY_PARAMETER: '/sample/deploy-key',
    SELFDEPLOY_RETRY_DELAY: '0',
    ...settings,
  };
}

/** The requests a fake AWS CLI logged to `calls`. */
const awsCalls = (calls: string) => readFileSync(join(instance.dir, calls), 'utf8').trim().split('\n');

describe('Parameter Store reads', () => {
  test('a read that is throttled once, or cannot connect once, is tried again and the deploy goes on', async () => {
    const pinned = instance.app.head();
    instance.app.commit('Not pinned');
    const pinning = {
      SELFDEPLOY_PINNED_REVISION_PARAMETER: '/sample/{environment}/revision',
      FAKE_AWS_PINNED: pinned,
    };

    const throttled = await instance.run(
      fakeAws('calls-throttled', { ...pinning, FAKE_AWS_FAILURES: '1', FAKE_AWS_ERROR: THROTTLED }),
    );
    const unreachable = await instance.run(
      fakeAws('calls-unreachable', {
        ...pinning,
        FAKE_AWS_FAILURES: '1',
        FAKE_AWS_ERROR: NO_CONNECTION,
        FAKE_AWS_STATUS: '255',
      }),
    );

    expect(throttled.exitCode).toBe(0);
    expect(throttled.result).toMatchObject({
      revision: pinned,
      source: 'pinned:/sample/production/revision',
    });
    expect(throttled.stderr).toContain('ThrottlingException');
    expect(throttled.stderr).toContain(
      'reading /sample/production/revision from Parameter Store failed (attempt 1 of 4); trying again in 0.000s',
    );
    expect(throttled.stderr).toContain(
      'reading /sample/deploy-key from Parameter Store failed (attempt 1 of 4); trying again in 0.000s',
    );
    expect(instance.currentRevision()).toBe(pinned);
    expect(unreachable.exitCode).toBe(0);
    expect(unreachable.result).toMatchObject({ revision: pinned, skipped: true });
    expect(unreachable.stderr).toContain('Could not connect to the endpoint URL');
    // One request per attempt: the CLI's own retries are off, so the script's bound is the only one.
    for (const calls of ['calls-throttled', 'calls-unreachable']) {
      expect(awsCalls(calls).sort()).toEqual([
        '/sample/deploy-key AWS_MAX_ATTEMPTS=1',
        '/sample/deploy-key AWS_MAX_ATTEMPTS=1',
        '/sample/production/revision AWS_MAX_ATTEMPTS=1',
        '/sample/production/revision AWS_MAX_ATTEMPTS=1',
      ]);
    }
  });

  test('a read that keeps failing ends with exit 6 after exactly SELFDEPLOY_RETRY_ATTEMPTS requests', async () => {
    const run = await instance.run({
      ...fakeAws('calls-failing', { FAKE_AWS_FAILURES: '99', FAKE_AWS_ERROR: THROTTLED }),
      SELFDEPLOY_RETRY_ATTEMPTS: '3',
    });

    expect(run.exitCode).toBe(6);
    expect(run.stderr).toContain('cannot read deploy key parameter /sample/deploy-key');
    expect(run.stderr).toContain('(attempt 2 of 3); trying again');
    expect(awsCalls('calls-failing')).toHaveLength(3);
  });

  test('access denied is not retried (exit 6 after one request), nor a parameter that does not exist', async () => {
    const denied = await instance.run(
      fakeAws('calls-denied', { FAKE_AWS_FAILURES: '99', FAKE_AWS_ERROR: ACCESS_DENIED }),
    );
    const missing = await instance.run({
      ...fakeAws('calls-missing'),
      SELFDEPLOY_ENVIRONMENT: 'staging',
      SELFDEPLOY_BRANCHES: 'staging=master',
      SELFDEPLOY_PINNED_REVISION_PARAMETER: '/sample/{environment}/revision',
    });

    expect(denied.exitCode).toBe(6);
    expect(denied.stderr).toContain('AccessDeniedException');
    expect(denied.stderr).not.toContain('trying again');
    expect(awsCalls('calls-denied')).toHaveLength(1);
    expect(missing.exitCode).toBe(0);
    expect(missing.stdout).toContain('no pinned revision (/sample/staging/revision does not exist)');
    expect(
      awsCalls('calls-missing').filter((call) => call.startsWith('/sample/staging/revision ')),
    ).toHaveLength(1);
  });

  test('a pinned revision that is not a revision name fails with exit 7, naming the parameter', async () => {
    const run = await instance.run(
      fakeAws('calls-bad-pin', {
        SELFDEPLOY_PINNED_REVISION_PARAMETER: '/sample/{environment}/revision',
        FAKE_AWS_PINNED: '--output=/tmp/x',
      }),
    );

    expect(run.exitCode).toBe(7);
    expect(run.stderr).toContain(
      'pinned revision --output=/tmp/x in /sample/production/revision does not match',
    );
  });
});

describe('git over SSH', () => {
  let connections: string;
  /** known_hosts lines for this machine's sshd: git's host. */
  let trusted: string;

  /** git's SSH as the application user: connections to origin are counted, and `failing` ones fail. */
  function gitEnv(
    failing: (number | 'every')[],
    overrides: Record<string, string> = {},
  ): Record<string, string> {
    rmSync(connections, { force: true });
    const realSsh = execFileSync('sh', ['-c', 'command -v ssh'], { encoding: 'utf8' }).trim();
    const failed = failing.map(String).join(' ');
    const aws = fakeAws('calls-git');
    const path = withCommand(
      'flaky-ssh',
      'ssh',
      [
        'case "$*" in',
        '*git-upload-pack*)',
        `  echo connection >>${connections}`,
        `  n=$(wc -l <${connections})`,
        `  for failing in ${failed}; do`,
        '    if [ "$failing" = every ] || [ "$failing" = "$n" ]; then',
        `      echo "ssh: connect to host 127.0.0.1 port ${instance.sshd.port}: Connection timed out" >&2`,
        '      exit 255',
        '    fi',
        '  done',
        '  ;;',
        'esac',
        `exec ${realSsh} "$@"`,
      ].join('\n'),
      aws.PATH,
    );
    return { ...aws, PATH: path, FAKE_AWS_DEPLOY_KEY: join(instance.dir, 'git-deploy-key'), ...overrides };
  }
  const connectionCount = () =>
    existsSync(connections) ? readFileSync(connections, 'utf8').trim().split('\n').length : 0;

  beforeAll(() => {
    connections = join(userWritableDir(instance, 'ssh-connections'), 'count');
    // The localhost key (made by the runs above) is authorized for the user: as good a deploy
    // key as any for git over SSH to this machine.
    writeFileSync(join(instance.dir, 'git-deploy-key'), readFileSync(join(instance.sshDir, 'localhost_key')));
    trusted = hostPublicKeys(instance.sshd.hostKeyDir)
      .map((key) => `[127.0.0.1]:${instance.sshd.port} ${key.split(' ').slice(0, 2).join(' ')}`)
      .join('\n');
    const url = `ssh://${instance.user.name}@127.0.0.1:${instance.sshd.port}${instance.app.repoPath}`;
    const asUser = process.getuid?.() === 0 ? ['runuser', '-u', instance.user.name, '--'] : [];
    const [program = 'git', ...args] = [
      ...asUser,
      'git',
      '-C',
      instance.deployPath,
      'remote',
      'set-url',
      'origin',
      url,
    ];
    const set = spawnSync(program, args, { encoding: 'utf8', cwd: '/' });
    if (set.status !== 0) throw new Error(`git remote set-url: ${set.stderr}`);
  });

  test('a fetch whose first connection fails is tried again, and the deploy goes on', async () => {
    const sha = instance.app.commit('Fetched on the second attempt');

    // A named branch: asking origin for its default branch would be one more connection.
    const run = await instance.run(
      gitEnv([1], { SELFDEPLOY_GIT_KNOWN_HOSTS: trusted, SELFDEPLOY_BRANCHES: 'production=master' }),
    );

    expect(run.exitCode).toBe(0);
    expect(instance.currentRevision()).toBe(sha);
    expect(run.stderr).toContain('Connection timed out');
    expect(run.stderr).toContain(`git fetch in ${instance.deployPath} failed (attempt 1 of 4); trying again`);
    expect(connectionCount()).toBe(2);
  });

  test('a fetch that keeps failing ends with exit 7 after exactly SELFDEPLOY_RETRY_ATTEMPTS attempts, each wait longer', async () => {
    const current = instance.currentRevision();

    const run = await instance.run(
      gitEnv(['every'], {
        SELFDEPLOY_GIT_KNOWN_HOSTS: trusted,
        SELFDEPLOY_RETRY_ATTEMPTS: '3',
        SELFDEPLOY_RETRY_DELAY: '1',
      }),
    );

    expect(run.exitCode).toBe(7);
    expect(run.stderr).toContain(`git fetch in ${instance.deployPath} failed\n`);
    expect(connectionCount()).toBe(3);
    const waits = [...run.stderr.matchAll(/\(attempt (\d) of 3\); trying again in ([0-9.]+)s/g)].map((m) => [
      Number(m[1]),
      Number(m[2]),
    ]);
    expect(waits.map(([attempt]) => attempt)).toEqual([1, 2]);
    // 1 s, then 2 s, each plus up to half of it at random.
    expect(waits[0]?.[1]).toBeGreaterThanOrEqual(1);
    expect(waits[0]?.[1]).toBeLessThanOrEqual(1.5);
    expect(waits[1]?.[1]).toBeGreaterThanOrEqual(2);
    expect(waits[1]?.[1]).toBeLessThanOrEqual(3);
    expect(instance.currentRevision()).toBe(current);
  });

  test('asking origin for its default branch is tried again too', async () => {
    // No branch for the environment: origin's HEAD decides, which asks origin again.
    const run = await instance.run(
      gitEnv([2], { SELFDEPLOY_GIT_KNOWN_HOSTS: trusted, SELFDEPLOY_BRANCHES: '' }),
    );

    expect(run.exitCode).toBe(0);
    expect(run.result).toMatchObject({ source: 'branch:master', revision: instance.app.head() });
    expect(run.stderr).toContain(
      'asking origin for its default branch failed (attempt 1 of 4); trying again',
    );
    expect(connectionCount()).toBe(3);
  });

  test('what no retry changes fails at once: a revision origin does not have, a refused host key', async () => {
    const unknown = await instance.run(
      gitEnv([], { SELFDEPLOY_GIT_KNOWN_HOSTS: trusted, SELFDEPLOY_REVISION: 'no-such-branch' }),
    );
    const unknownConnections = connectionCount();
    const bogus = `[127.0.0.1]:${instance.sshd.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBogusBogusBogusBogusBogusBogusBogusBogusBog`;
    const refused = await instance.run(gitEnv([], { SELFDEPLOY_GIT_KNOWN_HOSTS: bogus }));

    expect(unknown.exitCode).toBe(7);
    expect(unknown.stderr).toContain('revision no-such-branch is not a commit, branch or tag of origin');
    expect(unknownConnections).toBe(1);
    expect(refused.exitCode).toBe(7);
    expect(refused.stderr).toContain('Host key verification failed');
    expect(refused.stderr).not.toContain('trying again');
    expect(connectionCount()).toBe(1);
  });
});

test('docs/instance.md states the attempts and waits that --help and the script use', async () => {
  const script = readFileSync(SCRIPT, 'utf8');
  const help = (await runScript({ PATH: process.env.PATH ?? '' }, ['--help'])).stdout;
  const docs = readFileSync(join(__dirname, '..', '..', 'docs', 'instance.md'), 'utf8').replace(/\s+/g, ' ');
  const attempts = Number(/RETRY_ATTEMPTS=\$\{SELFDEPLOY_RETRY_ATTEMPTS:-(\d+)\}/.exec(script)?.[1]);
  const delay = Number(/RETRY_DELAY=\$\{SELFDEPLOY_RETRY_DELAY:-(\d+)\}/.exec(script)?.[1]);
  const waits = Array.from({ length: attempts - 1 }, (_, index) => delay * 2 ** index);

  expect(attempts).toBeGreaterThan(1);
  expect(help).toMatch(new RegExp(`SELFDEPLOY_RETRY_ATTEMPTS .*\\n.*\\(${attempts}; `));
  expect(help).toMatch(new RegExp(`SELFDEPLOY_RETRY_DELAY .*\\n.*\\(${delay}: ${waits.join(', ')} s; `));
  expect(docs).toContain(
    `up to ${attempts} attempts, waiting ${waits.slice(0, -1).join(' s, ')} s, then ${waits.at(-1)} s between them`,
  );
});
