/**
 * `npm start`: a whole selfdeploy scale-out on this machine, no AWS account needed. A local
 * control plane (Auto Scaling + SSM on 127.0.0.1), the real orchestrator handler, simulated
 * instances that run the real SelfDeploy document (bash, Capistrano, sshd, git); then a new
 * commit and a console-style redeploy of the group. Exits 0 when every instance ended as
 * expected. `npm start -- --help` lists the options.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import {
  COMMAND_STATUS_DETAIL_TYPE,
  isTerminalStatus,
  LAUNCH_DETAIL_TYPE,
} from '../../functions/shared/event-patterns';
import type { Command } from './control-plane/ssm';
import { GROUP_NAME, LocalRun } from './local-run';
import { FUNCTION_NAME } from './orchestrator';
import { COMPACT_ABOVE_INSTANCES, HELP, type Options, parseOptions, UsageError } from './start-options';

/** What the real deploy needs on this machine (scripts/setup.sh installs it). */
const REAL_DEPLOY_COMMANDS = ['git', 'ssh', 'ssh-keygen', 'cap', 'bundle', 'ruby', 'flock'];

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

/**
 * Prints one line per change of an instance's state or step, with the time since start;
 * above COMPACT_ABOVE_INSTANCES instances, one counter line instead: redrawn in place at
 * most once a second on a terminal, a new line at most every 5 s otherwise (a log file).
 */
class Progress {
  readonly #shown = new Map<string, string>();
  readonly #started = Date.now();
  readonly #tty = process.stdout.isTTY === true;
  #counterAt = 0;
  #counter = '';
  /** A counter line is on screen without its newline (terminal only). */
  #open = false;

  public constructor(
    private readonly run: LocalRun,
    private readonly compact: boolean,
  ) {}

  public print(line: string): void {
    this.#endCounter();
    process.stdout.write(`${this.#stamp()} ${line}\n`);
  }

  /** Shows what changed; `force` also draws the counter now (before a summary). */
  public update(force = false): void {
    if (this.compact) {
      this.#updateCounter(force);
      return;
    }
    for (const record of this.run.records.values()) {
      const status = this.#status(record.id);
      if (this.#shown.get(record.id) === status) continue;
      this.#shown.set(record.id, status);
      this.print(`${record.id}  ${status}`);
    }
  }

  /** Ends a counter line drawn in place, so the next output starts on a line of its own. */
  #endCounter(): void {
    if (!this.#open) return;
    process.stdout.write('\n');
    this.#open = false;
  }

  #stamp(): string {
    return `[${((Date.now() - this.#started) / 1000).toFixed(1).padStart(5)}s]`;
  }

  #updateCounter(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.#counterAt < (this.#tty ? 1000 : 5000)) return;
    const counter = this.#counterText();
    if (counter === this.#counter && !force) return;
    this.#counterAt = now;
    this.#counter = counter;
    if (this.#tty) {
      process.stdout.write(`\r\x1b[2K${this.#stamp()} ${counter}`);
      this.#open = true;
    } else {
      process.stdout.write(`${this.#stamp()} ${counter}\n`);
    }
  }

  /** e.g. "1000 instances: 412 InService, 380 Pending:Wait (200 agent registering, 180 deploying), 8 abandoned". */
  #counterText(): string {
    const { plane } = this.run;
    const online = new Set(
      plane.ssm
        .managedInstances()
        .filter((m) => m.online)
        .map((m) => m.id),
    );
    const running = new Set<string>();
    for (const command of plane.ssm.commands()) {
      for (const invocation of command.invocations) {
        if (!isTerminalStatus(invocation.status)) running.add(invocation.instanceId);
      }
    }
    const states = new Map<string, number>();
    let registering = 0;
    let deploying = 0;
    const instances = this.run.instances();
    for (const instance of instances) {
      states.set(instance.state, (states.get(instance.state) ?? 0) + 1);
      if (instance.state === 'InService') continue;
      if (!online.has(instance.id)) registering++;
      else if (running.has(instance.id)) deploying++;
    }
    const abandoned = [...this.run.records.values()].filter((r) => r.result === 'ABANDON').length;
    const parts = [...states].map(([state, count]) => `${count} ${state}`);
    return `${instances.length} instances: ${parts.join(', ') || 'none yet'} (${registering} agent registering, ${deploying} deploying), ${abandoned} abandoned`;
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

/** A revision the stand-in deploy fails (--bad-revision without a real deploy). */
const BAD_REVISION = 'bad-revision';

/** What the steps of one run share. */
interface Session {
  readonly opts: Options;
  readonly run: LocalRun;
  readonly progress: Progress;
  /** Above COMPACT_ABOVE_INSTANCES: counts instead of a line or a row per instance. */
  readonly compact: boolean;
  /** When --timeout ends the waits (real time). */
  readonly deadline: number;
  /** What did not end as expected; the run fails unless this stays empty. */
  readonly problems: string[];
}

async function main(): Promise<number> {
  const opts = prepare(process.argv.slice(2));
  if (typeof opts === 'number') return opts;
  const run = await startRun(opts);
  if (run === undefined) return 2;
  const compact = opts.instances > COMPACT_ABOVE_INSTANCES;
  const progress = new Progress(run, compact);
  const supervision = supervise(run, progress);
  const session: Session = {
    opts,
    run,
    progress,
    compact,
    deadline: Date.now() + opts.timeout * 1000,
    problems: [],
  };
  try {
    progress.print(
      `control plane ${run.plane.endpoint}; group ${GROUP_NAME} with a launch hook; application user ${run.appUser}; run directory ${run.dir}`,
    );
    await scaleOut(session);
    await redeploy(session);
  } catch (error) {
    session.problems.push((error as Error).message);
  }
  summarize(session);
  await finish(session, supervision);
  return session.problems.length > 0 ? 1 : 0;
}

/** The options, or the exit code when there is nothing to run: 0 after --help, 2 on bad usage. */
function prepare(argv: readonly string[]): Options | number {
  try {
    const options = parseOptions(argv);
    if (!options) {
      process.stdout.write(HELP);
      return 0;
    }
    checkPrerequisites(options);
    return options;
  } catch (error) {
    process.stderr.write(`npm start: ${(error as Error).message}\n`);
    return 2;
  }
}

/**
 * Starts the local world with the faults the options ask for; undefined (after one line on
 * stderr) when --port is taken. The first --fail launches cannot deploy; their replacements can.
 */
async function startRun(opts: Options): Promise<LocalRun | undefined> {
  const failing = new Set<string>();
  const losable = (event: { 'detail-type': string; detail: Readonly<Record<string, unknown>> }) =>
    event['detail-type'] === LAUNCH_DETAIL_TYPE ||
    (event['detail-type'] === COMMAND_STATUS_DETAIL_TYPE && isTerminalStatus(event.detail.status as string));
  process.stdout.write(
    'selfdeploy local run: starting the control plane, sshd and the sample application…\n',
  );
  try {
    return await LocalRun.start({
      deploy:
        opts.standIn === undefined
          ? 'real'
          : {
              durationMs: opts.standIn,
              fails: (e) => e.parameters.revision === BAD_REVISION || failing.has(e.instanceId),
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
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    process.stderr.write(
      `npm start: port ${opts.port} on 127.0.0.1 is in use: choose another --port, or leave it out for any free port\n`,
    );
    return undefined;
  }
}

/** What keeps a run tidy while it runs: the progress ticker, the interrupt handlers, the launcher watch. */
interface Supervision {
  /** Removes the interrupt handlers (from here on, Ctrl-C is the caller's). */
  readonly releaseSignals: () => void;
  /** Stops the ticker and the launcher watch. */
  readonly stop: () => void;
}

/**
 * Shows progress every 100 ms; Ctrl-C (or a kill, or the launching npm going away) mid-run
 * still stops sshd and the function and removes the run's directory and user.
 */
function supervise(run: LocalRun, progress: Progress): Supervision {
  const ticker = setInterval(() => progress.update(), 100);
  const onInterrupt = (signal: NodeJS.Signals) => {
    clearInterval(ticker);
    process.stdout.write('\ninterrupted: cleaning up\n');
    void run.stop().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onInterrupt);
  process.once('SIGTERM', onInterrupt);
  const stopWatching = watchLaunchers();
  return {
    releaseSignals: () => {
      process.removeListener('SIGINT', onInterrupt);
      process.removeListener('SIGTERM', onInterrupt);
    },
    stop: () => {
      stopWatching();
      clearInterval(ticker);
    },
  };
}

/** Scales the group out to --instances, waits until it has settled and checks it: all on the branch head, --fail abandoned. */
async function scaleOut({ opts, run, progress, compact, deadline, problems }: Session): Promise<void> {
  const firstHead = run.app?.head();
  progress.print(
    `scaling out to ${opts.instances} instance(s); deploying ${shortSha(firstHead)} (branch head)`,
  );
  run.scaleTo(opts.instances);
  await run.waitFor(`${opts.instances} instance(s) InService`, () => run.settled(), deadline - Date.now());
  progress.update(true);

  const records = [...run.records.values()];
  process.stdout.write(
    report(
      compact,
      'Scale-out',
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
      1,
    ),
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
}

/**
 * Pushes a new commit (--bad-revision: one whose deploy fails) and deploys it the way an
 * operator does from the Lambda console's Test tab: canary first, then the rest, promoted on
 * success, the release left as it was on failure. Waits for the deployment and checks it.
 */
async function redeploy({ opts, run, progress, compact, deadline, problems }: Session): Promise<void> {
  const next = opts.badRevision ? run.app?.commitFailingDeploy() : run.app?.commit('Second version');
  const action = {
    action: 'deploy',
    group: GROUP_NAME,
    revision: next ?? (opts.badRevision ? BAD_REVISION : 'v2'),
  };
  progress.print(
    `pushed ${shortSha(next)}${opts.badRevision ? ' (its deploy fails)' : ''}; invoking ${JSON.stringify(action)}`,
  );
  const before = new Set(run.plane.ssm.commands().map((c) => c.id));
  const answer = (await run.orchestrator.invoke(action)) as { result?: { deploymentId?: string } };
  const answered = JSON.stringify(answer);
  progress.print(
    `the orchestrator answered: ${compact && answered.length > 200 ? `${answered.slice(0, 200)}…` : answered}`,
  );
  const record = (name: string): { id?: string; phase?: string } | undefined => {
    try {
      return JSON.parse(run.plane.ssm.getParameter(`/selfdeploy/${GROUP_NAME}/${name}`).value);
    } catch {
      return undefined;
    }
  };
  const deploys = () => run.plane.ssm.commands().filter((c) => !before.has(c.id));
  await run.waitFor(
    'the deployment to end and its commands to finish',
    () =>
      record('last-deployment')?.id === answer.result?.deploymentId &&
      !record('deployment') &&
      deploys().every((c) => isTerminalStatus(c.status)),
    deadline - Date.now(),
  );
  progress.update(true);
  const invocations = deploys().flatMap((c) => c.invocations);
  const ended = record('last-deployment')?.phase;
  process.stdout.write(
    report(
      compact,
      `Deploy of ${shortSha(next)}: ${ended}`,
      ['instance', 'state', 'deploy', 'revision'],
      run
        .instances()
        .map((instance) => [
          instance.id,
          instance.state,
          invocations.findLast((i) => i.instanceId === instance.id)?.status ?? 'not sent',
          shortSha(run.revisionOf(instance.id)),
        ]),
      2,
    ),
  );
  for (const instance of run.instances()) {
    const deployed = run.revisionOf(instance.id);
    if (instance.state !== 'InService') problems.push(`${instance.id} left service during the deploy`);
    if (opts.badRevision && next && deployed === next)
      problems.push(`${instance.id} serves the failing revision`);
    if (!opts.badRevision && next && deployed !== next) {
      problems.push(`${instance.id} has ${shortSha(deployed)} after the deploy, not ${shortSha(next)}`);
    }
  }
  if (opts.badRevision && ended !== 'failed')
    problems.push(`the failing revision's deployment ended ${ended}`);
  if (!opts.badRevision && ended !== 'promoted') problems.push(`the deployment ended ${ended}, not promoted`);
}

/** A table per instance for small runs; one line of counts (of `column`'s values) for big ones. */
function report(compact: boolean, title: string, header: string[], rows: string[][], column: number): string {
  if (!compact) return `\n${title}\n${table(header, rows)}\n\n`;
  const counts = new Map<string, number>();
  for (const row of rows) counts.set(row[column] ?? '', (counts.get(row[column] ?? '') ?? 0) + 1);
  return `\n${title}: ${[...counts].map(([value, count]) => `${count} ${value}`).join(', ')}\n\n`;
}

/** Prints the run's traffic and its verdict: OK, or FAILED with every problem. */
function summarize({ run, progress, problems }: Session): void {
  progress.update(true);
  progress.print('done');
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
}

/** With --keep, serves the control plane until Ctrl-C; then stops the run (a failed run keeps its directory). */
async function finish({ opts, run, progress, problems }: Session, supervision: Supervision): Promise<void> {
  supervision.releaseSignals();
  if (opts.keep) {
    await keepRunning(run, progress);
    supervision.stop();
    await run.stop(true);
    process.stdout.write(`stopped; the run directory is kept: ${run.dir}\n`);
  } else {
    supervision.stop();
    // A failed run keeps its directory: the logs say why.
    await run.stop(problems.length > 0);
  }
}

/**
 * Ctrl-C in a terminal reaches every process of the group. A SIGINT sent to npm alone (a
 * supervisor, CI, `kill -INT`) is forwarded by npm to the script's shell only, which is why
 * `npm start` execs tsx (tsx relays it here). When npm goes away without forwarding (killed,
 * or a version that does not forward), this process would run on with sshd, the function and
 * the run's user and directory: so the launchers between npm and this process are watched,
 * and this process interrupts itself when one of them is gone.
 */
function watchLaunchers(): () => void {
  const launchers = launcherPids();
  const timer = setInterval(() => {
    if (launchers.every(alive)) return;
    clearInterval(timer);
    process.kill(process.pid, 'SIGINT');
  }, 200);
  timer.unref();
  return () => clearInterval(timer);
}

/** This process's ancestors up to the nearest npm, or just its parent when npm did not start it. */
function launcherPids(): number[] {
  const pids: number[] = [];
  let pid = process.ppid;
  for (let depth = 0; depth < 4 && pid > 1; depth++) {
    const args = procFile(pid, 'cmdline').split('\0');
    pids.push(pid);
    // npm sets its title to e.g. "npm start -- --keep", which replaces its command line.
    if (args.some((arg) => /(^|\/)npm(-cli\.js)?( |$)/.test(arg))) return pids;
    const stat = procFile(pid, 'stat');
    // The fields after the command name (in parentheses): state, then the parent's pid.
    pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  }
  return [process.ppid];
}

function procFile(pid: number, name: string): string {
  try {
    return readFileSync(`/proc/${pid}/${name}`, 'utf8');
  } catch {
    return '';
  }
}

/** Running: it exists and is not a zombie its parent has yet to reap. */
function alive(pid: number): boolean {
  const stat = procFile(pid, 'stat');
  return stat !== '' && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
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
      `  export SELFDEPLOY_FUNCTION=${FUNCTION_NAME}`,
      `  npx selfdeploy status --group ${GROUP_NAME}        # docs/cli.md`,
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
