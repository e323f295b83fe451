/**
 * What self-deploy.sh refuses before it touches anything, and how it reports itself.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SELF_DEPLOY_EXIT_CODES } from '../../infra/document';
import { runScript } from './instance';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'selfdeploy-inputs-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** An environment whose state, app and marker paths show whether anything ran. */
function hostileEnv(overrides: Record<string, string>) {
  const marker = join(dir, `pwned-${Math.random().toString(36).slice(2)}`);
  const stateDir = join(dir, 'state');
  const appPath = join(dir, 'app');
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    SELFDEPLOY_APP_USER: 'nobody',
    SELFDEPLOY_DEPLOY_PATH: join(dir, 'deploy'),
    SELFDEPLOY_APP_PATH: appPath,
    SELFDEPLOY_STATE_DIR: stateDir,
    ...Object.fromEntries(
      Object.entries(overrides).map(([key, value]) => [key, value.replace('MARKER', marker)]),
    ),
  };
  return { env, untouched: () => [marker, stateDir, appPath].every((path) => !existsSync(path)) };
}

test.each([
  ['an environment with ;', { SELFDEPLOY_ENVIRONMENT: 'production;touch MARKER' }, 'SELFDEPLOY_ENVIRONMENT'],
  [
    'an environment with a newline',
    { SELFDEPLOY_ENVIRONMENT: 'production\ntouch MARKER' },
    'SELFDEPLOY_ENVIRONMENT',
  ],
  [
    'a revision starting with -',
    { SELFDEPLOY_REVISION: '--upload-pack=touch MARKER' },
    'SELFDEPLOY_REVISION',
  ],
  ['a revision with $( )', { SELFDEPLOY_REVISION: 'main$(touch MARKER)' }, 'SELFDEPLOY_REVISION'],
  ['user root when root is not allowed', { SELFDEPLOY_APP_USER: 'root' }, 'root is not allowed'],
  ['a relative deploy path', { SELFDEPLOY_DEPLOY_PATH: 'srv/deploy' }, 'SELFDEPLOY_DEPLOY_PATH'],
  ['an app path with ..', { SELFDEPLOY_APP_PATH: '/var/www/../../etc' }, 'SELFDEPLOY_APP_PATH'],
  ['a lifecycle token with shell in it', { SELFDEPLOY_LIFECYCLE_ACTION_TOKEN: '`touch MARKER`' }, 'TOKEN'],
  [
    'a branch setting with shell in it',
    { SELFDEPLOY_BRANCHES: 'production=$(touch MARKER)' },
    'SELFDEPLOY_BRANCHES',
  ],
  ['a non-numeric ssh port', { SELFDEPLOY_SSH_PORT: '22 -o ProxyCommand=x' }, 'SELFDEPLOY_SSH_PORT'],
])('rejects %s before anything runs', async (_, overrides, named) => {
  const { env, untouched } = hostileEnv(overrides);

  const run = await runScript(env);

  expect(run.exitCode).toBe(SELF_DEPLOY_EXIT_CODES.invalidInput);
  expect(run.stderr.trim().split('\n')).toHaveLength(1);
  expect(run.stderr).toMatch(/^self-deploy: error: /);
  expect(run.stderr).toContain(named);
  expect(run.stdout).not.toContain('fetching');
  expect(run.result).toMatchObject({ status: 'failure', exitCode: SELF_DEPLOY_EXIT_CODES.invalidInput });
  expect(untouched()).toBe(true);
});

test('--help documents every exit code and input', async () => {
  const run = await runScript({ PATH: process.env.PATH ?? '' }, ['--help']);

  expect(run.exitCode).toBe(0);
  for (const code of Object.values(SELF_DEPLOY_EXIT_CODES)) {
    expect(run.stdout).toMatch(new RegExp(`^  ${code} +\\S`, 'm'));
  }
  for (const variable of ['SELFDEPLOY_ENVIRONMENT', 'SELFDEPLOY_REVISION', 'SELFDEPLOY_DEPLOY_COMMAND']) {
    expect(run.stdout).toContain(variable);
  }
});

test('an unknown argument is a usage error', async () => {
  const run = await runScript({ PATH: process.env.PATH ?? '' }, ['--force']);

  expect(run.exitCode).toBe(SELF_DEPLOY_EXIT_CODES.invalidInput);
  expect(run.stderr).toContain('Usage: self-deploy.sh');
});

test('a missing deploy checkout stops the run as a missing prerequisite', async () => {
  const { env } = hostileEnv({ SELFDEPLOY_APP_USER: 'root', SELFDEPLOY_ALLOW_ROOT: '1' });

  const run = await runScript(env);

  // When not root, the caller must be the application user: also a prerequisite.
  expect(run.exitCode).toBe(SELF_DEPLOY_EXIT_CODES.missingPrerequisite);
  expect(run.stderr).toMatch(/deploy checkout .* is not a git clone|run as root/);
  expect(run.result).toMatchObject({
    status: 'failure',
    exitCode: SELF_DEPLOY_EXIT_CODES.missingPrerequisite,
  });
});

test('an unexpected failure names the line and still ends with the result line', async () => {
  const me = execFileSync('id', ['-un'], { encoding: 'utf8' }).trim();
  const deployPath = join(dir, 'checkout');
  mkdirSync(deployPath, { recursive: true });
  execFileSync('git', ['init', '--quiet', deployPath]);
  // A state directory below a regular file cannot be created.
  writeFileSync(join(dir, 'not-a-directory'), '');
  const { env } = hostileEnv({
    SELFDEPLOY_APP_USER: me,
    SELFDEPLOY_ALLOW_ROOT: '1',
    SELFDEPLOY_DEPLOY_PATH: deployPath,
    SELFDEPLOY_STATE_DIR: join(dir, 'not-a-directory', 'state'),
  });

  const run = await runScript(env);

  expect(run.exitCode).toBe(SELF_DEPLOY_EXIT_CODES.unexpected);
  expect(run.stderr).toMatch(/^self-deploy: error: line \d+: mkdir -p .* exited with 1$/m);
  expect(run.result).toMatchObject({ status: 'failure', exitCode: 1 });
});

test('every problem of the input is named on one line', async () => {
  const { env, untouched } = hostileEnv({
    SELFDEPLOY_ENVIRONMENT: 'Prod',
    SELFDEPLOY_REVISION: '-x',
    SELFDEPLOY_BOOT_WAIT_SECONDS: 'soon',
    SELFDEPLOY_HEALTH_CHECK_ATTEMPTS: '0',
    SELFDEPLOY_HEALTH_CHECK_URL: 'http://example.com/up',
    SELFDEPLOY_BOOT_CHECK_COMMAND: 'sleep 1\ntouch MARKER',
  });

  const run = await runScript(env);

  expect(run.exitCode).toBe(SELF_DEPLOY_EXIT_CODES.invalidInput);
  expect(run.stderr.trim().split('\n')).toHaveLength(1);
  for (const named of [
    'SELFDEPLOY_ENVIRONMENT Prod does not match',
    'SELFDEPLOY_REVISION -x does not match',
    'SELFDEPLOY_BOOT_WAIT_SECONDS soon does not match',
    'SELFDEPLOY_HEALTH_CHECK_ATTEMPTS 0 is less than 1',
    'SELFDEPLOY_HEALTH_CHECK_URL http://example.com/up does not match',
    'SELFDEPLOY_BOOT_CHECK_COMMAND must be one line of printable characters',
  ]) {
    expect(run.stderr).toContain(named);
  }
  expect(untouched()).toBe(true);
});

test('invalid input still leaves its result in SELFDEPLOY_RESULT_FILE', async () => {
  const resultFile = join(dir, 'result');
  const { env } = hostileEnv({ SELFDEPLOY_ENVIRONMENT: 'Prod', SELFDEPLOY_RESULT_FILE: resultFile });

  const run = await runScript(env);

  expect(run.exitCode).toBe(SELF_DEPLOY_EXIT_CODES.invalidInput);
  expect(JSON.parse(readFileSync(resultFile, 'utf8'))).toMatchObject({
    status: 'failure',
    exitCode: SELF_DEPLOY_EXIT_CODES.invalidInput,
  });
});
