import { chownSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type SelfDeployDocument, shellQuote } from '../../infra/document';
import type { Agent, Execution, ExecutionResult } from './control-plane/ssm';
import { runDocument } from './run-document';
import type { SampleApp } from './sample-app';
import type { AppUser, Sshd } from './sshd';

export interface DeployAgentOptions {
  /** Each instance's files live under `<dir>/<instance id>`. */
  readonly dir: string;
  /** The application repository each instance's "image" holds a clone of. */
  readonly app: SampleApp;
  readonly appUser: AppUser;
  /** The loopback sshd Capistrano connects to ("localhost" of every simulated instance). */
  readonly sshd: Sshd;
  readonly region: string;
  /**
   * Instances whose sshd is down (fault injection): their deploy cannot reach localhost and fails.
   * @default none
   */
  readonly sshdDown?: (instanceId: string) => boolean;
}

/** A port nothing listens on (tcpmux is never served here), for an instance whose sshd is down. */
const CLOSED_PORT = 1;

/**
 * The SSM agent of a simulated instance, running the SelfDeploy document for real: its
 * shell with bash, the real self-deploy script, Capistrano over SSH to the loopback sshd,
 * git. Simulated instances share this machine, so each gets its own root directory: the
 * document's appPath and deployPath parameters are taken relative to it, as if the
 * instance's filesystem were mounted there. Its first command finds the deploy checkout
 * already cloned, as a machine image would hold it.
 */
export function deployAgent(options: DeployAgentOptions): Agent {
  const prepared = new Set<string>();
  return async (execution: Execution): Promise<ExecutionResult> => {
    const root = join(options.dir, execution.instanceId);
    const parameters = {
      ...execution.parameters,
      appPath: join(root, execution.parameters.appPath ?? ''),
      deployPath: join(root, execution.parameters.deployPath ?? ''),
    };
    if (!prepared.has(execution.instanceId)) {
      prepareImage(options, root, parameters.appPath, parameters.deployPath);
      prepared.add(execution.instanceId);
    }
    const result = await runDocument({
      document: onInstanceRoot(JSON.parse(execution.documentContent) as SelfDeployDocument, root),
      parameters,
      env: {
        SELFDEPLOY_SSH_PORT: String(
          options.sshdDown?.(execution.instanceId) ? CLOSED_PORT : options.sshd.port,
        ),
        SELFDEPLOY_HOST_KEY_DIR: options.sshd.hostKeyDir,
      },
      workDir: join(root, 'agent'),
      instanceId: execution.instanceId,
      region: options.region,
      signal: execution.signal,
    });
    return {
      exitCode: result.exitCode,
      stdout: result.stdout,
      stderr: result.stderr,
      timedOut: result.timedOut,
    };
  };
}

const STATE_DIRECTORY_LINE = /^SELFDEPLOY_STATE_DIR='([^']*)'; export SELFDEPLOY_STATE_DIR$/;

/**
 * The document as the instance's own filesystem sees it: the state directory (lock, gem
 * marker, deploy logs) lies under the instance's root like its other paths, so instances
 * deploy side by side instead of taking turns on one lock.
 */
function onInstanceRoot(document: SelfDeployDocument, root: string): SelfDeployDocument {
  const [step] = document.mainSteps;
  const runCommand = step.inputs.runCommand.map((line) => {
    const stateDirectory = STATE_DIRECTORY_LINE.exec(line)?.[1];
    return stateDirectory === undefined
      ? line
      : `SELFDEPLOY_STATE_DIR=${shellQuote(join(root, stateDirectory))}; export SELFDEPLOY_STATE_DIR`;
  });
  return { ...document, mainSteps: [{ ...step, inputs: { ...step.inputs, runCommand } }] };
}

/** What the machine image holds: the deploy checkout and an empty deploy_to, owned by the app user. */
function prepareImage(options: DeployAgentOptions, root: string, appPath: string, deployPath: string): void {
  // Traversable by the application user, like / on an instance.
  mkdirSync(root, { recursive: true, mode: 0o755 });
  mkdirSync(join(root, 'agent'), { mode: 0o700 });
  mkdirSync(appPath, { recursive: true, mode: 0o755 });
  chownSync(appPath, options.appUser.uid, options.appUser.gid);
  options.app.cloneTo(deployPath);
}
