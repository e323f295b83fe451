import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import type { ControlPlane } from '../../scripts/local/control-plane/control-plane';
import { GROUP_NAME, LocalRun, type LocalRunOptions } from '../../scripts/local/local-run';

/** Whether the OS user `name` exists on this machine. */
export function userExists(name: string): boolean {
  try {
    execFileSync('getent', ['passwd', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A starter of local runs for one test file; the run a test started is stopped after it. */
export function localRuns(): (options?: LocalRunOptions) => Promise<LocalRun> {
  let run: LocalRun | undefined;
  afterEach(async () => {
    await run?.stop();
    run = undefined;
  });
  return async (options = {}) => {
    run = await LocalRun.start(options);
    return run;
  };
}

/** `npm start`'s program, run as npm runs it, with everything it prints collected. */
export interface StartedRun {
  readonly child: ChildProcess;
  /** stdout and stderr so far, interleaved. */
  output(): string;
  readonly exit: Promise<number | null>;
}

/** Starts scripts/local/start.ts with `args` from the repository's root. */
export function startLocal(args: readonly string[]): StartedRun {
  const child = spawn(
    process.execPath,
    ['--require', require.resolve('tsx/cjs'), 'scripts/local/start.ts', ...args],
    { cwd: join(__dirname, '..', '..'), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exit };
}

/** Waits until `read()` holds `text`; fails with what was read after `timeoutMs`. */
export async function waitForOutput(read: () => string, text: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!read().includes(text)) {
    if (Date.now() > deadline) throw new Error(`no "${text}" in:\n${read()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Commands the stand-in's SSM started, per instance they ran on. */
export function commandsPerInstance(local: LocalRun): Map<string, number> {
  const counts = new Map<string, number>();
  for (const command of local.plane.ssm.commands()) {
    for (const invocation of command.invocations) {
      counts.set(invocation.instanceId, (counts.get(invocation.instanceId) ?? 0) + 1);
    }
  }
  return counts;
}

/**
 * Lets every wait grow older than the queue's watch over it (agentWaitSeconds, which the
 * function counts in real time: give the run 1 s): the scheduled reconcile leaves younger
 * waits to the queue. Measured from the newest scaling activity, as the reconciler measures.
 */
export async function pastTheQueuesWatch(local: LocalRun, agentWaitSeconds = 1): Promise<void> {
  const newest = Math.max(0, ...local.plane.autoScaling.activities().map((activity) => activity.startedAt));
  const due = newest + agentWaitSeconds * 1000 + 100;
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, due - Date.now())));
}

/** SDK settings against `plane` with its own credentials; no retries, so each refusal shows. */
export function planeClientConfig(plane: ControlPlane) {
  return { endpoint: plane.endpoint, region: plane.region, credentials: plane.credentials, maxAttempts: 1 };
}

/** One of the run's group's records, as the orchestrator keeps it in Parameter Store. */
export function groupRecord<T>(local: LocalRun, name: string): T | undefined {
  try {
    return JSON.parse(local.plane.ssm.getParameter(`/selfdeploy/${GROUP_NAME}/${name}`).value) as T;
  } catch {
    return undefined;
  }
}

/** Runs an operator action as the Lambda console's Test button does; its answer. */
export async function operate(local: LocalRun, action: Record<string, unknown>) {
  const routed = (await local.orchestrator.invoke(action)) as {
    kind: string;
    result: Record<string, unknown>;
  };
  expect(routed.kind).toBe('operator');
  return routed.result;
}

/** The sample's Capfile, made to load the tasks under lib/capistrano/tasks that a commit adds. */
export const CAPFILE_WITH_TASKS = [
  "require 'capistrano/setup'",
  "require 'capistrano/deploy'",
  "require 'capistrano/scm/git'",
  'install_plugin Capistrano::SCM::Git',
  "Dir.glob('lib/capistrano/tasks/*.rake').each { |task| import task }",
  '',
].join('\n');
