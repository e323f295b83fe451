/**
 * One simulated instance for the instance tests: an application user, a real sshd on a
 * loopback port, a sample Capistrano app in a bare repository, the deploy checkout a machine
 * image would hold, and a way to run self-deploy.sh on it as the SSM agent would (as root).
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSampleApp, type SampleApp } from '../../scripts/local/sample-app';
import {
  type AppUser,
  ensureAppUser,
  removeAppUser,
  runUserName,
  type Sshd,
  startSshd,
} from '../../scripts/local/sshd';

export const SCRIPT = join(__dirname, '..', '..', 'scripts', 'instance', 'self-deploy.sh');

/** What one run of the script left behind, as an operator reads it. */
export interface RunResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  /** The SELFDEPLOY_RESULT line's JSON. */
  readonly result: Record<string, unknown>;
}

export interface Instance {
  readonly dir: string;
  readonly user: AppUser;
  readonly sshd: Sshd;
  readonly app: SampleApp;
  readonly deployPath: string;
  readonly appPath: string;
  readonly stateDir: string;
  /** The application user's ssh files of this instance (localhost key, known_hosts, git ssh). */
  readonly sshDir: string;
  /** The script's environment on this instance; `overrides` win. */
  env(overrides?: Readonly<Record<string, string>>): Record<string, string>;
  /**
   * Runs self-deploy.sh with this instance's environment plus `overrides`; `onStdout` sees
   * its output so far whenever more arrives.
   */
  run(overrides?: Readonly<Record<string, string>>, onStdout?: (stdout: string) => void): Promise<RunResult>;
  /** current/REVISION, or undefined when nothing is deployed. */
  currentRevision(): string | undefined;
  /** Names of the release directories. */
  releases(): string[];
  /** Stops sshd, removes the files and the application user this instance created. */
  stop(): Promise<void>;
}

export interface InstanceOptions {
  /**
   * An application user to share (as simulated instances of one machine do); this instance
   * then neither creates nor removes one.
   * @default a new user named `<prefix>-<unique suffix>`
   */
  readonly user?: AppUser;
}

/**
 * Starts an instance under a fresh temporary directory, with a new application user named
 * after `prefix` unless `options.user` is given.
 */
export async function startInstance(prefix: string, options: InstanceOptions = {}): Promise<Instance> {
  const dir = mkdtempSync(join(tmpdir(), `selfdeploy-${prefix}-`));
  // The application user has to reach its checkout and deploy_to below this directory.
  chmodSync(dir, 0o755);
  const ownUser = options.user === undefined;
  const user = options.user ?? ensureAppUser(runUserName(prefix.replace(/^sd-/, '')));
  const deployPath = join(dir, 'srv', 'deploy');
  const appPath = join(dir, 'srv', 'app');
  const stateDir = join(dir, 'state');
  let sshd: Sshd;
  try {
    sshd = await startSshd({ dir: join(dir, 'sshd') });
  } catch (error) {
    if (ownUser) removeAppUser(user.name);
    throw error;
  }
  let app: SampleApp;
  try {
    app = createSampleApp({ dir: join(dir, 'author'), owner: user, environments: ['production', 'staging'] });
    app.cloneTo(deployPath);
  } catch (error) {
    // Nobody else would stop this sshd or remove this user.
    await sshd.stop();
    if (ownUser) removeAppUser(user.name);
    throw error;
  }

  const env = (overrides: Readonly<Record<string, string>> = {}): Record<string, string> => ({
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    SELFDEPLOY_APP_USER: user.name,
    SELFDEPLOY_DEPLOY_PATH: deployPath,
    SELFDEPLOY_APP_PATH: appPath,
    SELFDEPLOY_STATE_DIR: stateDir,
    SELFDEPLOY_SSH_PORT: String(sshd.port),
    SELFDEPLOY_HOST_KEY_DIR: sshd.hostKeyDir,
    ...overrides,
  });
  return {
    dir,
    user,
    sshd,
    app,
    deployPath,
    appPath,
    stateDir,
    sshDir: join(stateDir, 'ssh'),
    env,
    run: (overrides, onStdout) => runScript(env(overrides), [], onStdout),
    currentRevision: () => {
      const path = join(appPath, 'current', 'REVISION');
      return existsSync(path) ? readFileSync(path, 'utf8').trim() : undefined;
    },
    releases: () =>
      existsSync(join(appPath, 'releases')) ? readdirSync(join(appPath, 'releases')).sort() : [],
    stop: async () => {
      await sshd.stop();
      rmSync(dir, { recursive: true, force: true });
      if (ownUser) removeAppUser(user.name);
    },
  };
}

/** Runs self-deploy.sh with exactly `env`; `onStdout` sees its output so far whenever more arrives. */
export function runScript(
  env: Readonly<Record<string, string>>,
  args: readonly string[] = [],
  onStdout?: (stdout: string) => void,
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(SCRIPT, args, { env, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      onStdout?.(stdout);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.once('error', reject);
    child.once('close', (code) =>
      resolve({ exitCode: code ?? -1, stdout, stderr, result: parseResult(stdout) }),
    );
  });
}

/** The JSON of the SELFDEPLOY_RESULT line, which must be the last line of stdout. */
export function parseResult(stdout: string): Record<string, unknown> {
  const last = stdout.trimEnd().split('\n').at(-1) ?? '';
  const match = /^SELFDEPLOY_RESULT (\{.*\})$/.exec(last);
  return match?.[1] ? (JSON.parse(match[1]) as Record<string, unknown>) : {};
}

/**
 * Commits the sample app's first config/deploy.rb with `tasks` (Ruby) appended (an empty
 * `tasks` restores it) and `message` as app.txt. Returns the SHA.
 */
export function commitDeployTasks(instance: Instance, message: string, tasks: string): string {
  const git = (...args: string[]) =>
    execFileSync('git', ['-c', 'safe.directory=*', '--git-dir', instance.app.repoPath, ...args], {
      encoding: 'utf8',
    });
  const root = git('rev-list', '--max-parents=0', instance.app.branch).trim();
  const original = git('show', `${root}:config/deploy.rb`);
  return instance.app.commit(message, {
    'config/deploy.rb': `${original}${tasks}`,
    'app.txt': `${message}\n`,
  });
}

/** A post-publish task that fails: Capistrano has already moved current and written REVISION. */
export const FAILING_AFTER_PUBLISHING = `namespace :sample do
  task :fail_after_publishing do
    raise 'sample post-publish task failed on purpose'
  end
end
after 'deploy:publishing', 'sample:fail_after_publishing'
`;

/** Waits until `path` exists (what a concurrent run writes once it got that far). */
export async function waitForFile(path: string, timeoutMs = 20_000): Promise<void> {
  for (let waited = 0; !existsSync(path); waited += 20) {
    if (waited > timeoutMs) throw new Error(`${path} did not appear within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A directory the application user can write to (test markers, logs), below the instance. */
export function userWritableDir(instance: Instance, name: string): string {
  const path = join(instance.dir, name);
  mkdirSync(path, { recursive: true });
  chownSync(path, instance.user.uid, instance.user.gid);
  return path;
}
