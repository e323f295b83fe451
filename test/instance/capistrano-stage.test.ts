/**
 * The shipped Capistrano stage (scripts/instance/capistrano/local_production.rb), loaded by
 * the real Capistrano with the variables self-deploy.sh gives the deploy command.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXAMPLE_STAGE_PATH } from '../../scripts/local/sample-app';

jest.setTimeout(60_000);

let dir: string;
let home: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'selfdeploy-stage-'));
  home = join(dir, 'home');
  mkdirSync(join(dir, 'app', 'config', 'deploy'), { recursive: true });
  mkdirSync(home);
  copyFileSync(EXAMPLE_STAGE_PATH, join(dir, 'app', 'config', 'deploy', 'local_production.rb'));
  writeFileSync(join(dir, 'app', 'config', 'deploy.rb'), "set :application, 'stage-test'\n");
  writeFileSync(
    join(dir, 'app', 'Capfile'),
    [
      "require 'capistrano/setup'",
      "require 'capistrano/deploy'",
      "require 'capistrano/scm/git'",
      'install_plugin Capistrano::SCM::Git',
      'task :roles do',
      '  roles(:all).each { |server| puts "#{server.hostname} #{server.roles.to_a.sort.join(\',\')}" }',
      'end',
      // What the git plugin's steps do: git with the stage's git environment.
      'task :git_probe do',
      '  run_locally do',
      '    with fetch(:git_environmental_variables) do',
      "      execute :git, 'ls-remote', 'ssh://git.invalid/app.git', raise_on_non_zero_exit: false",
      '    end',
      '  end',
      'end',
      '',
    ].join('\n'),
  );
  // Stand-ins for self-deploy.sh's strict ssh wrapper and for a user's own ssh command.
  for (const name of ['strict-ssh', 'user-ssh']) {
    writeFileSync(join(dir, name), `#!/bin/sh\ntouch '${join(dir, `${name}-ran`)}'\nexit 1\n`);
    chmodSync(join(dir, name), 0o755);
  }
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `cap local_production <task>` with the deploy command's environment plus `env`. */
function cap(task: string, env: Readonly<Record<string, string | undefined>> = {}) {
  const environment: Record<string, string> = {};
  for (const [name, value] of Object.entries({
    PATH: process.env.PATH,
    HOME: home,
    SELFDEPLOY_APP_USER: 'deploy',
    SELFDEPLOY_SSH_PORT: '22',
    SELFDEPLOY_REVISION: '0123456789abcdef0123456789abcdef01234567',
    SELFDEPLOY_APP_PATH: '/var/www/app',
    SELFDEPLOY_SSH_KEY: join(dir, 'localhost_key'),
    SELFDEPLOY_KNOWN_HOSTS: join(dir, 'known_hosts'),
    SELFDEPLOY_GIT_SSH: join(dir, 'strict-ssh'),
    SELFDEPLOY_GIT_SSH_COMMAND: join(dir, 'strict-ssh'),
    SELFDEPLOY_MIGRATE: 'false',
    ...env,
  })) {
    if (value !== undefined) environment[name] = value;
  }
  const result = spawnSync('cap', ['local_production', task], {
    cwd: join(dir, 'app'),
    env: environment,
    encoding: 'utf8',
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('the db role', () => {
  test('an instance deploying with migrate=false has no db role, so it runs no migrations', () => {
    expect(cap('roles')).toMatchObject({ status: 0, stdout: '127.0.0.1 app,web\n' });
  });

  test('only the instance told migrate=true gets the db role', () => {
    expect(cap('roles', { SELFDEPLOY_MIGRATE: 'true' })).toMatchObject({
      status: 0,
      stdout: '127.0.0.1 app,db,web\n',
    });
  });

  test('a migrate value other than true or false stops the stage with one clear line', () => {
    const result = cap('roles', { SELFDEPLOY_MIGRATE: 'yes' });

    expect(result.status).not.toBe(0);
    expect(result.stderr.trim()).toBe(`SELFDEPLOY_MIGRATE is "yes"; it must be 'true' or 'false'`);
  });

  test('without SELFDEPLOY_MIGRATE the stage refuses to guess', () => {
    const result = cap('roles', { SELFDEPLOY_MIGRATE: undefined });

    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(
      "SELFDEPLOY_MIGRATE is not set: this stage runs through selfdeploy's self-deploy.sh",
    );
  });
});

describe('git over SSH', () => {
  test("git uses self-deploy.sh's strict wrapper even when the user's git config names its own ssh command", () => {
    // core.sshCommand outranks GIT_SSH; it could switch host key checking off.
    writeFileSync(join(home, '.gitconfig'), `[core]\n\tsshCommand = ${join(dir, 'user-ssh')}\n`);

    const result = cap('git_probe');

    expect(result.status).toBe(0);
    expect(existsSync(join(dir, 'strict-ssh-ran'))).toBe(true);
    expect(existsSync(join(dir, 'user-ssh-ran'))).toBe(false);
  });
});
