/**
 * `npm start`: a whole selfdeploy scale-out on this machine, no AWS account needed. A local
 * control plane (Auto Scaling + SSM on 127.0.0.1), the real orchestrator handler, simulated
 * instances that run the real SelfDeploy document (bash, Capistrano, sshd, git); then a new
 * commit and a console-style redeploy of the group. Exits 0 when every instance ended as
 * expected. `npm start -- --help` lists the options.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  COMMAND_STATUS_DETAIL_TYPE,
  isTerminalStatus,
  LAUNCH_DETAIL_TYPE,
} from '../../functions/shared/event-patterns';
import type { Command } from './control-plane/ssm';
import { DEFAULT_BOOT_DELAY_SECONDS, GROUP_NAME, LocalRun } from './local-run';

const HELP = `Usage: npm start -- [options]

Runs a scale-out of a local Auto Scaling group through selfdeploy, then a redeploy of a new
commit, and prints what happened to every instance.

Options:
  --instances N         instances to launch (default 3)
  --agent-delay S       simulated seconds until a new instance's SSM agent registers (default 5)
  --agent-rate R        agent registrations accepted per simulated second, as on big
                        scale-outs (default unlimited)
  --boot-delay S        simulated seconds from a new instance's agent registration until its
                        boot (user data, which clones the application) finishes (default 10)
  --fail N              the first N instances launched cannot deploy (their sshd is down):
                        selfdeploy abandons them and Auto Scaling replaces them (default 0)
  --bad-revision        the redeployed commit fails to deploy: the rollout stops at the first
                        failure and no instance serves it
  --throttle F          fraction of API calls answered with a throttling error, 0-1 (default 0)
  --lose-events F       fraction of launch and command-status events lost, 0-1 (default 0);
                        the reconcile schedule recovers them
  --duplicate-events N  extra deliveries of every event (default 0)
  --stand-in MS         replace the real deploy with a stand-in that takes MS milliseconds
  --time-scale X        simulated seconds per real second for AWS timers (default 10)
  --port P              control plane port on 127.0.0.1 (default: any free port)
  --timeout S           give up after S real seconds (default 110)
  --keep                leave the control plane running afterwards (Ctrl-C stops it) and
                        print how to point the AWS CLI or an SDK at it
  --help                show this help
`;

/** What the real deploy needs on this machine (scripts/setup.sh installs it). */
const REAL_DEPLOY_COMMANDS = ['git', 'ssh', 'ssh-keygen', 'cap', 'bundle', 'ruby', 'flock'];

interface Options {
  readonly instances: number;
  readonly agentDelay: number;
  readonly agentRate?: number;
  readonly bootDelay: number;
  readonly fail: number;
  readonly badRevision: boolean;
  readonly throttle: number;
  readonly loseEvents: number;
  readonly duplicateEvents: number;
  readonly standIn?: number;
  readonly timeScale: number;
  readonly port?: number;
  readonly timeout: number;
  readonly keep: boolean;
}

/** A problem the user can fix; printed without a stack trace. */
class UsageError extends Error {}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      instances: { type: 'string' },
      'agent-delay': { type: 'string' },
      'agent-rate': { type: 'string' },
      'boot-delay': { type: 'string' },
      fail: { type: 'string' },
      'bad-revision': { type: 'boolean' },
      throttle: { type: 'string' },
      'lose-events': { type: 'string' },
      'duplicate-events': { type: 'string' },
      'stand-in': { type: 'string' },
      'time-scale': { type: 'string' },
      port: { type: 'string' },
      timeout: { type: 'string' },
      keep: { type: 'boolean' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) return undefined;
  const number = (name: keyof typeof values, fallback: number, min: number, max: number): number => {
    const raw = values[name];
    if (raw === undefined) return fallback;
    const parsed = Number(raw);
    if (typeof raw !== 'string' || !Number.isFinite(parsed) || parsed < min || parsed > max) {
      throw new UsageError(`--${name} must be a number from ${min} to ${max}, got ${String(raw)}`);
    }
    return parsed;
  };
  const instances = number('instances', 3, 1, 1000);
  const options: Options = {
    instances,
    agentDelay: number('agent-delay', 5, 0, 3600),
    ...(values['agent-rate'] === undefined ? {} : { agentRate: number('agent-rate', 1, 0.001, 10_000) }),
    bootDelay: number('boot-delay', DEFAULT_BOOT_DELAY_SECONDS, 0, 3600),
    fail: number('fail', 0, 0, 1000),
    badRevision: values['bad-revision'] === true,
    throttle: number('throttle', 0, 0, 0.9),
    loseEvents: number('lose-events', 0, 0, 1),
    duplicateEvents: number('duplicate-events', 0, 0, 10),
    ...(values['stand-in'] === undefined ? {} : { standIn: number('stand-in', 0, 0, 600_000) }),
    timeScale: number('time-scale', 10, 0.1, 1000),
    ...(values.port === undefined ? {} : { port: number('port', 0, 0, 65535) }),
    timeout: number('timeout', 110, 5, 86_400),
    keep: values.keep === true,
  };
  if (!Number.isInteger(options.instances) || !Number.isInteger(options.fail)) {
    throw new UsageError('--instances and --fail must be whole numbers');
  }
  return options;
}

function checkPrerequisites(options: Options): void {
  if (options.standIn !== undefined) return;
  const missing = REAL_DEPLOY_COMMANDS.filter((command) => {
    try {
      execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (!existsSync('/usr/sbin/sshd')) missing.push('/usr/sbin/sshd');
  if (missing.length > 0) {
    throw new UsageError(
      `the real deploy needs ${missing.join(', ')}: run ./scripts/setup.sh (or use --stand-in MS for a stand-in deploy)`,
    );
  }
}

/** Prints one line per change of an instance's state or step, with the time since start. */
class Progress {
  readonly #shown = new Map<string, string>();
  readonly #started = Date.now();

  public constructor(private readonly run: LocalRun) {}

  public print(line: string): void {
    const seconds = ((Date.now() - this.#started) / 1000).toFixed(1).padStart(5);
    process.stdout.write(`[${seconds}s] ${line}\n`);
  }

  public update(): void {
    for (const record of this.run.records.values()) {
      const status = this.#status(record.id);
      if (this.#shown.get(record.id) === status) continue;
      this.#shown.set(record.id, status);
      this.print(`${record.id}  ${status}`);
    }
  }

  #status(id: string): string {
    const { plane } = this.run;
    const record = this.run.records.get(id);
    const state = plane.autoScaling.instance(id)?.state ?? 'Terminated';
    const online = plane.ssm.managedInstances().some((m) => m.id === id && m.online);
    const agent = !online
      ? 'agent registering'
      : this.run.booted(id) === false
        ? 'agent online, booting'
        : 'agent online';
    const invocation = latestCommand(this.run, id)?.invocations.find((i) => i.instanceId === id);
    const step = invocation ? `deploy ${invocation.status}` : agent;
    // Why an instance left: its deploy failed, or nothing completed the action in time.
    const completion =
      record?.result === 'ABANDON'
        ? `, ABANDON${record.completedBy === 'timeout' ? ' (hook timeout)' : ''}`
        : '';
    return `${state.padEnd(13)} ${step}${completion}`;
  }
}

function latestCommand(run: LocalRun, instanceId: string): Command | undefined {
  return run.plane.ssm
    .commands()
    .filter((c) => c.invocations.some((i) => i.instanceId === instanceId))
    .at(-1);
}

function shortSha(sha: string | undefined): string {
  return sha ? sha.slice(0, 7) : '-';
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

async function main(): Promise<number> {
  let options: Options | undefined;
  try {
    options = parseOptions(process.argv.slice(2));
    if (!options) {
      process.stdout.write(HELP);
      return 0;
    }
    checkPrerequisites(options);
  } catch (error) {
    process.stderr.write(`npm start: ${(error as Error).message}\n`);
    return 2;
  }
  const opts = options;

  // The first --fail launches cannot deploy; their replacements can.
  const failing = new Set<string>();
  const BAD = 'bad-revision';
  const losable = (event: { 'detail-type': string; detail: Readonly<Record<string, unknown>> }) =>
    event['detail-type'] === LAUNCH_DETAIL_TYPE ||
    (event['detail-type'] === COMMAND_STATUS_DETAIL_TYPE && isTerminalStatus(event.detail.status as string));

  process.stdout.write(
    'selfdeploy local run: starting the control plane, sshd and the sample application…\n',
  );
  const run = await LocalRun.start({
    deploy:
      opts.standIn === undefined
        ? 'real'
        : {
            durationMs: opts.standIn,
            fails: (e) => e.parameters.revision === BAD || failing.has(e.instanceId),
          },
    timeScale: opts.timeScale,
    agentDelaySeconds: (instance, launchIndex) => {
      if (launchIndex < opts.fail) failing.add(instance.id);
      return opts.agentDelay;
    },
    bootDelaySeconds: opts.bootDelay,
    sshdDown: (id) => failing.has(id),
    ...(opts.agentRate === undefined ? {} : { agentRegistrationsPerSecond: opts.agentRate }),
    reconcileEverySeconds: 30,
    maxSize: Math.max(10, opts.instances),
    throttle: { fraction: opts.throttle },
    faults: {
      drop: (event) => losable(event) && Math.random() < opts.loseEvents,
      duplicates: () => opts.duplicateEvents,
      duplicateSpacingSeconds: 1,
    },
    ...(opts.port === undefined ? {} : { port: opts.port }),
  });
  const progress = new Progress(run);
  const ticker = setInterval(() => progress.update(), 100);
  // Ctrl-C (or a kill) mid-run still stops sshd and the function and removes the run's
  // directory and user.
  const onInterrupt = (signal: NodeJS.Signals) => {
    clearInterval(ticker);
    process.stdout.write('\ninterrupted: cleaning up\n');
    void run.stop().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onInterrupt);
  process.once('SIGTERM', onInterrupt);
  const deadline = Date.now() + opts.timeout * 1000;
  const problems: string[] = [];
  try {
    progress.print(
      `control plane ${run.plane.endpoint}; group ${GROUP_NAME} with a launch hook; application user ${run.appUser}; run directory ${run.dir}`,
    );
    const firstHead = run.app?.head();
    progress.print(
      `scaling out to ${opts.instances} instance(s); deploying ${shortSha(firstHead)} (branch head)`,
    );
    run.scaleTo(opts.instances);
    await run.waitFor(`${opts.instances} instance(s) InService`, () => run.settled(), deadline - Date.now());
    progress.update();

    const records = [...run.records.values()];
    process.stdout.write(
      `\nScale-out\n${table(
        ['instance', 'result', 'revision', 'seconds', 'AWS calls'],
        records.map((r) => [
          r.id,
          r.result === 'CONTINUE'
            ? 'InService'
            : `abandoned${r.completedBy === 'timeout' ? ' (hook timeout)' : ' (deploy failed)'}, replaced`,
          shortSha(run.revisionOf(r.id)),
          r.completedAt === undefined ? '-' : ((r.completedAt - r.launchedAt) / 1000).toFixed(1),
          String(run.plane.callsFor(r.id).length),
        ]),
      )}\n\n`,
    );
    const abandoned = records.filter((r) => r.result === 'ABANDON');
    if (abandoned.length !== opts.fail) {
      problems.push(`${abandoned.length} instance(s) abandoned, expected ${opts.fail}`);
    }
    for (const instance of run.instances()) {
      if (firstHead && run.revisionOf(instance.id) !== firstHead) {
        problems.push(
          `${instance.id} is InService with revision ${shortSha(run.revisionOf(instance.id))}, not ${shortSha(firstHead)}`,
        );
      }
    }

    // A new commit, redeployed the way an operator does from the Lambda console's Test tab.
    const next = opts.badRevision ? run.app?.commitFailingDeploy() : run.app?.commit('Second version');
    const revision = run.app ? undefined : opts.badRevision ? BAD : 'v2';
    progress.print(
      `pushed ${shortSha(next)}${opts.badRevision ? ' (its deploy fails)' : ''}; invoking {"action":"redeploy","autoScalingGroupName":"${GROUP_NAME}"}`,
    );
    const before = new Set(run.plane.ssm.commands().map((c) => c.id));
    const answer = await run.orchestrator.invoke({
      action: 'redeploy',
      autoScalingGroupName: GROUP_NAME,
      ...(revision ? { revision } : {}),
    });
    progress.print(`the orchestrator answered: ${JSON.stringify(answer)}`);
    const redeploys = () => run.plane.ssm.commands().filter((c) => !before.has(c.id));
    await run.waitFor(
      'the redeploy to finish',
      () => redeploys().every((c) => isTerminalStatus(c.status)),
      deadline - Date.now(),
    );
    progress.update();
    const invocations = redeploys().flatMap((c) => c.invocations);
    process.stdout.write(
      `\nRedeploy of ${shortSha(next)}\n${table(
        ['instance', 'state', 'deploy', 'revision'],
        run
          .instances()
          .map((instance) => [
            instance.id,
            instance.state,
            invocations.find((i) => i.instanceId === instance.id)?.status ?? 'not sent',
            shortSha(run.revisionOf(instance.id)),
          ]),
      )}\n\n`,
    );
    for (const instance of run.instances()) {
      const deployed = run.revisionOf(instance.id);
      if (instance.state !== 'InService') problems.push(`${instance.id} left service during the redeploy`);
      if (opts.badRevision && next && deployed === next)
        problems.push(`${instance.id} serves the failing revision`);
      if (!opts.badRevision && next && deployed !== next) {
        problems.push(`${instance.id} has ${shortSha(deployed)} after the redeploy, not ${shortSha(next)}`);
      }
    }
    const failed = invocations.filter((i) => i.status !== 'Success').length;
    if (opts.badRevision && failed === 0) problems.push('the failing revision deployed without an error');
    if (!opts.badRevision && failed > 0) problems.push(`${failed} redeploy invocation(s) did not succeed`);
  } catch (error) {
    problems.push((error as Error).message);
  }
  progress.update();
  const calls = run.plane.calls;
  const throttled = calls.filter((c) => c.error === 'Throttling' || c.error === 'ThrottlingException').length;
  process.stdout.write(
    `${calls.length} AWS API calls (${throttled} throttled), ${run.orchestrator.lambda.invocations.length} orchestrator invocations, ` +
      `${run.plane.bus.dropped.length} event(s) lost\n`,
  );
  if (problems.length > 0) {
    process.stdout.write(`\nFAILED:\n${problems.map((p) => `  - ${p}`).join('\n')}\n`);
    process.stdout.write(`the orchestrator's log (kept): ${run.dir}/orchestrator.log\n`);
  } else {
    process.stdout.write('\nOK: every instance ended as expected.\n');
  }

  process.removeListener('SIGINT', onInterrupt);
  process.removeListener('SIGTERM', onInterrupt);
  if (opts.keep) {
    await keepRunning(run, progress);
    clearInterval(ticker);
    await run.stop(true);
    process.stdout.write(`stopped; the run directory is kept: ${run.dir}\n`);
  } else {
    clearInterval(ticker);
    // A failed run keeps its directory: the logs say why.
    await run.stop(problems.length > 0);
  }
  return problems.length > 0 ? 1 : 0;
}

/** Prints how to reach the control plane and waits for Ctrl-C. */
async function keepRunning(run: LocalRun, progress: Progress): Promise<void> {
  const env = run.plane.env();
  process.stdout.write(
    [
      '',
      `The control plane keeps running at ${run.plane.endpoint} (Ctrl-C to stop).`,
      'Point the AWS CLI or an SDK at it; it accepts only requests signed with these credentials:',
      ...Object.entries(env).map(([name, value]) => `  export ${name}=${value}`),
      // CLIs older than the service-specific endpoint variables (Debian's 2.9) need --endpoint-url.
      `  aws --endpoint-url ${run.plane.endpoint} autoscaling describe-auto-scaling-groups --auto-scaling-group-names ${GROUP_NAME}`,
      `  aws --endpoint-url ${run.plane.endpoint} autoscaling set-desired-capacity --auto-scaling-group-name ${GROUP_NAME} --desired-capacity 4`,
      `  aws --endpoint-url ${run.plane.endpoint} ssm list-commands`,
      'New launches go through the orchestrator as before; progress continues below.',
      '',
    ].join('\n'),
  );
  progress.print('waiting for Ctrl-C');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`npm start: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
