/**
 * One simulated instance for the instance tests: an application user, a real sshd on a
 * loopback port, a sample Capistrano app in a bare repository, the deploy checkout a machine
 * image would hold, and a way to run self-deploy.sh on it as the SSM agent would (as root).
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSampleApp, type SampleApp } from '../../scripts/local/sample-app';
import { type AppUser, ensureAppUser, type Sshd, startSshd } from '../../scripts/local/sshd';

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
  /** The script's environment on this instance; `overrides` win. */
  env(overrides?: Readonly<Record<string, string>>): Record<string, string>;
  /** Runs self-deploy.sh with this instance's environment plus `overrides`. */
  run(overrides?: Readonly<Record<string, string>>): Promise<RunResult>;
  /** current/REVISION, or undefined when nothing is deployed. */
  currentRevision(): string | undefined;
  /** Names of the release directories. */
  releases(): string[];
  stop(): Promise<void>;
}

/** Starts an instance under a fresh temporary directory; `userName` is its application user. */
export async function startInstance(userName: string): Promise<Instance> {
  const dir = mkdtempSync(join(tmpdir(), `selfdeploy-${userName}-`));
  // The application user has to reach its checkout and deploy_to below this directory.
  chmodSync(dir, 0o755);
  const user = ensureAppUser(userName);
  const deployPath = join(dir, 'srv', 'deploy');
  const appPath = join(dir, 'srv', 'app');
  const stateDir = join(dir, 'state');
  const sshd = await startSshd({ dir: join(dir, 'sshd') });
  let app: SampleApp;
  try {
    app = createSampleApp({ dir: join(dir, 'author'), owner: user, environments: ['production', 'staging'] });
    app.cloneTo(deployPath);
  } catch (error) {
    // Nobody else would stop this sshd.
    await sshd.stop();
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
    env,
    run: (overrides) => runScript(env(overrides)),
    currentRevision: () => {
      const path = join(appPath, 'current', 'REVISION');
      return existsSync(path) ? readFileSync(path, 'utf8').trim() : undefined;
    },
    releases: () =>
      existsSync(join(appPath, 'releases')) ? readdirSync(join(appPath, 'releases')).sort() : [],
    stop: async () => {
      await sshd.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs self-deploy.sh with exactly `env`. */
export function runScript(
  env: Readonly<Record<string, string>>,
  args: readonly string[] = [],
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(SCRIPT, args, { env, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
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
