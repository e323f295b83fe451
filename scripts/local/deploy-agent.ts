import { chownSync, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { INSTANCE_ID_PLACEHOLDER, type SelfDeployDocument, shellQuote } from '../../infra/document';
import type { Instance } from './control-plane/auto-scaling';
import type { Machine } from './control-plane/control-plane';
import { type Agent, type Execution, type ExecutionResult, RUN_SHELL_SCRIPT } from './control-plane/ssm';
import { type RunDocumentResult, runCommands, runDocument } from './run-document';
import type { SampleApp } from './sample-app';
import type { AppUser, Sshd } from './sshd';

export interface DeployAgentOptions {
  /** Each instance's files live under `<dir>/<instance id>`. */
  readonly dir: string;
  /** The application repository the instances' user data clones. */
  readonly app: SampleApp;
  readonly appUser: AppUser;
  /** The loopback sshd Capistrano connects to ("localhost" of every simulated instance). */
  readonly sshd: Sshd;
  readonly region: string;
  /** Where user data clones the deploy checkout, on the instance's filesystem. */
  readonly deployPath: string;
  /** The application directory the image holds, empty, owned by the application user. */
  readonly appPath: string;
  /**
   * Instances whose sshd is down (fault injection): their deploy cannot reach localhost and fails.
   * @default none
   */
  readonly sshdDown?: (instanceId: string) => boolean;
}

/** Simulated instances that run the real document: their agent and their operating system. */
export interface SimulatedInstances {
  readonly agent: Agent;
  readonly machine: Machine;
  /**
   * The document's boot check for these instances: waits until the instance's boot has
   * finished, as `cloud-init status --wait` does on a real one (it reads cloud-init's own
   * marker, under the instance's root).
   */
  readonly bootCheckCommand: string;
  /**
   * The document's state directory for these instances: each keeps its lock, gem marker,
   * deploy logs and SSH files under its own root, so they deploy side by side instead of
   * taking turns on one lock, each with its own SSH key.
   */
  readonly stateDirectory: string;
}

/** A port nothing listens on (tcpmux is never served here), for an instance whose sshd is down. */
const CLOSED_PORT = 1;
/** What cloud-init writes when boot (user data included) has finished. */
export const BOOT_FINISHED = 'var/lib/cloud/instance/boot-finished';
/** Where an instance keeps selfdeploy's state, under its root: the document's default place. */
const STATE_DIRECTORY = 'var/lib/selfdeploy';

/**
 * Instances that run the SelfDeploy document for real: the agent's shell with bash, the
 * real self-deploy script, Capistrano over SSH to the loopback sshd, git. They share this
 * machine, so each gets its own root directory: the document's appPath and deployPath
 * parameters are taken relative to it, as if the instance's filesystem were mounted there.
 * They boot in the real order: the agent may run a command before boot has finished, and
 * only the finished boot (user data) has cloned the deploy checkout.
 */
export function simulatedInstances(options: DeployAgentOptions): SimulatedInstances {
  const imaged = new Set<string>();
  const rootOf = (instanceId: string): string => join(options.dir, instanceId);
  /** What the machine image holds: the agent's directory and an empty appPath of the application user. */
  const image = (instanceId: string): string => {
    const root = rootOf(instanceId);
    if (imaged.has(instanceId)) return root;
    // Traversable by the application user, like / on an instance.
    mkdirSync(root, { recursive: true, mode: 0o755 });
    mkdirSync(join(root, 'agent'), { recursive: true, mode: 0o700 });
    const appPath = join(root, options.appPath);
    mkdirSync(appPath, { recursive: true, mode: 0o755 });
    chownSync(appPath, options.appUser.uid, options.appUser.gid);
    imaged.add(instanceId);
    return root;
  };

  const machine: Machine = {
    booted(instance: Instance, firstBoot: boolean) {
      const root = image(instance.id);
      // User data runs on the first boot only; it clones the application, as a demo stack's does.
      if (firstBoot) options.app.cloneTo(join(root, options.deployPath));
      const marker = join(root, BOOT_FINISHED);
      mkdirSync(dirname(marker), { recursive: true });
      writeFileSync(marker, `${new Date().toISOString()}\n`);
    },
    stopped(instance: Instance) {
      rmSync(join(rootOf(instance.id), BOOT_FINISHED), { force: true });
    },
  };

  /**
   * AWS-RunShellScript: the commands run as the application user (never as whoever runs the
   * control plane: root in CI) inside the instance's root, with the user's HOME.
   */
  const runShellScript = async (execution: Execution, root: string): Promise<ExecutionResult> => {
    const { commands = '', workingDirectory = '', executionTimeout = '3600' } = execution.parameters;
    const cwd = join(root, workingDirectory);
    if (relative(root, cwd).startsWith('..') || !existsSync(cwd) || !statSync(cwd).isDirectory()) {
      return {
        exitCode: 1,
        stdout: '',
        stderr: `workingDirectory ${workingDirectory} is not a directory on instance ${execution.instanceId}\n`,
        timedOut: false,
      };
    }
    const { appUser } = options;
    const result = await runCommands({
      commands,
      cwd,
      env: {
        PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        HOME: appUser.home,
        USER: appUser.name,
        LOGNAME: appUser.name,
        AWS_SSM_INSTANCE_ID: execution.instanceId,
        AWS_SSM_REGION_NAME: options.region,
      },
      timeoutSeconds: Number(executionTimeout),
      // Not root, the application user is the current user (see ensureAppUser).
      ...(process.getuid?.() === 0 ? { user: appUser.name } : {}),
      signal: execution.signal,
    });
    return asExecutionResult(result);
  };

  const agent: Agent = async (execution: Execution): Promise<ExecutionResult> => {
    const root = image(execution.instanceId);
    if (execution.documentName === RUN_SHELL_SCRIPT) return runShellScript(execution, root);
    const parameters = {
      ...execution.parameters,
      appPath: join(root, execution.parameters.appPath ?? ''),
      deployPath: join(root, execution.parameters.deployPath ?? ''),
    };
    const result = await runDocument({
      document: JSON.parse(execution.documentContent) as SelfDeployDocument,
      parameters,
      env: {
        SELFDEPLOY_SSH_PORT: String(
          options.sshdDown?.(execution.instanceId) ? CLOSED_PORT : options.sshd.port,
        ),
        SELFDEPLOY_HOST_KEY_DIR: options.sshd.hostKeyDir,
      },
      // Each command its own directory, as the SSM agent's orchestration directory
      // (…/document/orchestration/<command-id>/…): two commands on one instance (a duplicate
      // send) never write each other's script while it runs.
      workDir: orchestrationDir(root, execution.commandId),
      instanceId: execution.instanceId,
      region: options.region,
      signal: execution.signal,
    });
    return asExecutionResult(result);
  };

  const marker = `${shellQuote(options.dir)}/"$AWS_SSM_INSTANCE_ID"/${BOOT_FINISHED}`;
  return {
    agent,
    machine,
    bootCheckCommand: `until [ -e ${marker} ]; do sleep 0.1; done`,
    stateDirectory: join(options.dir, INSTANCE_ID_PLACEHOLDER, STATE_DIRECTORY),
  };
}

/** Where the agent writes a command's script on an instance whose root is `root`. */
export function orchestrationDir(root: string, commandId: string): string {
  return join(root, 'agent', 'orchestration', commandId);
}

/** What the agent reports of a run: SSM's view of it, without the run's own extras. */
function asExecutionResult(result: RunDocumentResult): ExecutionResult {
  return {
    exitCode: result.exitCode,
    stdout: result.stdout,
    stderr: result.stderr,
    timedOut: result.timedOut,
  };
}
