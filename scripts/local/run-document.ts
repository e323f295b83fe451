/**
 * Runs a built SelfDeploy document the way the SSM agent's aws:runShellScript does on Linux:
 * parameters validated against their allowedPattern, `{{ name }}` substituted as text,
 * ENV_VAR parameters exported as SSM_<name>, runCommand written to `_script.sh` and run by
 * `sh -c` as the current user (root on an instance), killed with its process group at the
 * execution timeout (exit code 137), output truncated as GetCommandInvocation reports it.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SelfDeployDocument } from '../../infra/document';
import { OUTPUT_LIMITS, resolveParameters } from './control-plane/ssm';

/** The agent's exit code for a script it stopped (timeout or cancel) on Linux. */
export const STOPPED_EXIT_CODE = 137;
/** The agent's PATH under systemd when the caller gives none. */
const AGENT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface RunDocumentOptions {
  readonly document: SelfDeployDocument;
  /** Parameter values as SendCommand got them; missing ones take the document's defaults. */
  readonly parameters?: Readonly<Record<string, string>>;
  /**
   * Environment added to (and overriding) the agent's: PATH with a fake `aws`, HOME,
   * SELFDEPLOY_SSH_PORT / SELFDEPLOY_HOST_KEY_DIR of a simulated instance, …
   * @default none
   */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Seconds before the script is stopped.
   * @default the document's timeoutSeconds after substitution (executionTimeout)
   */
  readonly timeoutSeconds?: number;
  /**
   * Directory the agent writes `_script.sh` to (its orchestration directory).
   * @default a new temporary directory, removed afterwards
   */
  readonly workDir?: string;
  /**
   * Working directory of the script.
   * @default workDir
   */
  readonly cwd?: string;
  /** Instance id and region the agent exports as AWS_SSM_INSTANCE_ID / AWS_SSM_REGION_NAME. */
  readonly instanceId?: string;
  readonly region?: string;
  /**
   * false simulates an agent older than 3.3.2746.0, which sets no SSM_<name> variables.
   * @default true
   */
  readonly parameterVariables?: boolean;
  /** Aborting stops the script as CancelCommand does (exit code 137, cancelled: true). */
  readonly signal?: AbortSignal;
}

export interface RunDocumentResult {
  /** The script's exit code; 137 when it was stopped. */
  readonly exitCode: number;
  /** Output as GetCommandInvocation reports it (its first OUTPUT_LIMITS characters). */
  readonly stdout: string;
  readonly stderr: string;
  /** Output in full, as CloudWatch Logs would get it. */
  readonly fullStdout: string;
  readonly fullStderr: string;
  readonly timedOut: boolean;
  readonly cancelled: boolean;
  readonly durationMs: number;
}

/** SendCommand / the agent refused the parameters; nothing ran. */
export class InvalidParametersError extends Error {
  public constructor(message: string) {
    super(message);
    this.name = 'InvalidParametersError';
  }
}

/** Runs the document's single aws:runShellScript step for real. */
export async function runDocument(options: RunDocumentOptions): Promise<RunDocumentResult> {
  const { values, problems } = resolveParameters(options.document.parameters, options.parameters ?? {});
  if (problems.length > 0) throw new InvalidParametersError(problems.join('; '));
  const substitute = (text: string): string =>
    text.replace(/\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g, (whole, name: string) => values[name] ?? whole);
  const step = options.document.mainSteps[0];
  const script = step.inputs.runCommand.map(substitute).join('\n');
  const timeoutSeconds = options.timeoutSeconds ?? Number(substitute(step.inputs.timeoutSeconds));
  if (!Number.isFinite(timeoutSeconds) || timeoutSeconds <= 0) {
    throw new InvalidParametersError(
      `timeoutSeconds ${step.inputs.timeoutSeconds} is not a number of seconds`,
    );
  }

  const parameterEnv =
    options.parameterVariables === false
      ? {}
      : Object.fromEntries(
          Object.entries(options.document.parameters)
            .filter(([, parameter]) => parameter.interpolationType === 'ENV_VAR')
            .map(([name]) => [`SSM_${name}`, values[name] ?? '']),
        );
  const env: Record<string, string> = {
    PATH: AGENT_PATH,
    ...(options.instanceId ? { AWS_SSM_INSTANCE_ID: options.instanceId } : {}),
    ...(options.region ? { AWS_SSM_REGION_NAME: options.region } : {}),
    ...parameterEnv,
    ...options.env,
  };

  const ownWorkDir = options.workDir === undefined;
  const workDir = options.workDir ?? mkdtempSync(join(tmpdir(), 'selfdeploy-agent-'));
  if (!ownWorkDir) mkdirSync(workDir, { recursive: true, mode: 0o700 });
  const scriptPath = join(workDir, '_script.sh');
  writeFileSync(scriptPath, script, { mode: 0o700 });
  try {
    return await run(['sh', '-c', scriptPath], options.cwd ?? workDir, env, timeoutSeconds, options.signal);
  } finally {
    if (ownWorkDir) rmSync(workDir, { recursive: true, force: true });
  }
}

export interface RunCommandsOptions {
  /** The commands, one per line, as AWS-RunShellScript's `commands` StringList joins them. */
  readonly commands: string;
  /** Working directory of the commands. */
  readonly cwd: string;
  /** The whole environment of the commands. */
  readonly env: Readonly<Record<string, string>>;
  /** Seconds before the commands are stopped (exit code 137, timedOut: true). */
  readonly timeoutSeconds: number;
  /** Runs them as this user (`runuser -u`); only root can. @default the current user */
  readonly user?: string;
  readonly signal?: AbortSignal;
}

/**
 * Runs shell commands as aws:runShellScript runs AWS-RunShellScript's, but optionally as
 * another user: a simulated instance shares this machine, so nothing it is sent may run as
 * the user running the control plane.
 */
export function runCommands(options: RunCommandsOptions): Promise<RunDocumentResult> {
  const shell = ['sh', '-c', options.commands];
  const argv = options.user === undefined ? shell : ['runuser', '-u', options.user, '--', ...shell];
  return run(argv, options.cwd, { ...options.env }, options.timeoutSeconds, options.signal);
}

function run(
  argv: readonly string[],
  cwd: string,
  env: Record<string, string>,
  timeoutSeconds: number,
  signal: AbortSignal | undefined,
): Promise<RunDocumentResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    // Its own process group, so stopping it takes its children (cap, ssh, git) along.
    const [file = 'sh', ...args] = argv;
    const child = spawn(file, args, {
      cwd,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    let timedOut = false;
    let cancelled = false;
    const stop = (): void => {
      if (child.pid !== undefined && child.exitCode === null) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, timeoutSeconds * 1000);
    const onAbort = (): void => {
      cancelled = true;
      stop();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      const fullStdout = Buffer.concat(stdout).toString('utf8');
      const fullStderr = Buffer.concat(stderr).toString('utf8');
      resolve({
        exitCode: timedOut || cancelled ? STOPPED_EXIT_CODE : (code ?? STOPPED_EXIT_CODE),
        stdout: fullStdout.slice(0, OUTPUT_LIMITS.stdout),
        stderr: fullStderr.slice(0, OUTPUT_LIMITS.stderr),
        fullStdout,
        fullStderr,
        timedOut,
        cancelled,
        durationMs: Date.now() - started,
      });
    });
  });
}
