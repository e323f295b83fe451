/**
 * `npm start`: a whole selfdeploy scale-out on this machine, no AWS account needed. A local
 * control plane (Auto Scaling + SSM on 127.0.0.1), the real orchestrator handler, simulated
 * instances that run the real SelfDeploy document (bash, Capistrano, sshd, git). It shows the
 * release flow: a scale-out records the first release, a new commit is deployed canary-first
 * and promoted, a bad commit fails on the canary and leaves the release, a further scale-out
 * deploys the release, a rollback. Exits 0 when every instance ended as expected.
 * `npm start -- --help` lists the options.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import {
  COMMAND_STATUS_DETAIL_TYPE,
  isTerminalStatus,
  LAUNCH_DETAIL_TYPE,
} from '../../functions/shared/event-patterns';
import type {
  Deployment,
  GroupStatus,
  InstanceStatus,
  OperatorAction,
  OperatorAnswer,
} from '../../functions/shared/operator-actions';
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

  /** Prints a block of lines (a table) after ending any counter line. */
  public block(text: string): void {
    this.#endCounter();
    process.stdout.write(`\n${text}\n`);
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

/** The revision the stand-in deploy fails (the bad commit, without a real deploy). */
const BAD_REVISION = 'bad-revision';
/** Real time the after-deploy checks wait for the instances' tags to catch up (status events are batched for seconds). */
const SETTLE_MS = 10_000;

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
    const first = await scaleOut(session);
    const good = await deployNewCommit(session, first);
    const bad = await deployBadCommit(session, good);
    await scaleOutAtRelease(session, good, bad);
    await rollBack(session, first, good);
    await scaleBackIn(session);
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
      // One more than --instances: the fourth step scales out by one.
      maxSize: Math.max(10, opts.instances + 1),
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

/** Step 1: scales the group out to --instances with no release yet; the first successful deploy records one. Its SHA. */
async function scaleOut(session: Session): Promise<string> {
  const { opts, run, progress, problems } = session;
  const head = run.app?.head();
  progress.print(
    `1. scale-out to ${opts.instances} instance(s): no release yet, so launches deploy the branch head${head ? ` ${shortSha(head)}` : ''}`,
  );
  run.scaleTo(opts.instances);
  await run.waitFor(
    `${opts.instances} instance(s) InService`,
    () => run.settled(),
    session.deadline - Date.now(),
  );
  const status = await settle(
    session,
    (s) => s.release !== undefined && s.instances.every((i) => i.sha === s.release?.sha),
  );
  const release = status.release?.sha;
  if (release === undefined) throw new Error('the scale-out recorded no release');
  const records = [...run.records.values()];
  const abandoned = records.filter((r) => r.result === 'ABANDON');
  const gone = abandoned.map((r) => [
    r.id,
    'Terminated',
    '-',
    '-',
    `abandoned (${r.completedBy === 'timeout' ? 'hook timeout' : 'deploy failed'}), replaced`,
  ]);
  showStep(session, status, new Map(), gone);
  progress.print(
    `release ${release} recorded by the first successful deploy; ${status.instances.length} instance(s) on it, ${abandoned.length} abandoned and replaced`,
  );
  if (abandoned.length !== opts.fail) {
    problems.push(`${abandoned.length} instance(s) abandoned, expected ${opts.fail}`);
  }
  if (head !== undefined && release !== head)
    problems.push(`the release is ${release}, not the branch head ${head}`);
  checkAllOn(session, status, release, 'after the scale-out');
  return release;
}

/** Step 2: a new commit deployed canary-first (migrations there only) and promoted. Its SHA. */
async function deployNewCommit(session: Session, first: string): Promise<string> {
  const { run, progress, problems } = session;
  const next = run.app?.commit('Second version');
  progress.print(`2. deploy a new commit canary-first${next ? `: pushed ${shortSha(next)}` : ''}`);
  const sent = sentFrom(run);
  const { answer, deployment } = await deployAndFollow(session, {
    action: 'deploy',
    group: GROUP_NAME,
    revision: next ?? 'v2',
  });
  const good = deployment.sha ?? next ?? '';
  const status = await settle(session, (s) => s.instances.every((i) => i.sha === good));
  showStep(session, status, new Map([[answer.canary ?? '', 'canary (migrate=true)']]));
  const migrated = sent()
    .filter((c) => c.parameters.migrate?.[0] === 'true')
    .flatMap((c) => c.invocations.map((i) => i.instanceId));
  progress.print(
    `${deployment.id} ${deployment.phase}: release ${status.release?.sha}, previous ${status.release?.previous}; migrations ran on ${migrated.length} instance(s): ${migrated.join(', ') || 'none'}`,
  );
  if (deployment.phase !== 'promoted')
    problems.push(`${deployment.id} ended ${deployment.phase}, not promoted`);
  if (next !== undefined && deployment.sha !== next) {
    problems.push(`${deployment.id} resolved ${shortSha(deployment.sha)}, not the pushed ${shortSha(next)}`);
  }
  if (status.release?.sha !== good || status.release.previous !== first) {
    problems.push(
      `the release is ${status.release?.sha} (previous ${status.release?.previous}), not ${good} (previous ${first})`,
    );
  }
  if (migrated.length !== 1 || migrated[0] !== answer.canary) {
    problems.push(
      `migrations ran on ${migrated.join(', ') || 'no instance'}, not on the canary ${answer.canary} only`,
    );
  }
  checkAllOn(session, status, good, `after ${deployment.id}`);
  return good;
}

/**
 * Step 3: a commit whose deploy fails (after Capistrano published it), deployed: the canary
 * fails, the rest never get it, the release stays and the canary is sent it back. Its SHA
 * (the stand-in's failing revision name without a real deploy).
 */
async function deployBadCommit(session: Session, good: string): Promise<string> {
  const { run, progress, problems } = session;
  const bad = run.app?.commitFailingDeploy('after-publish') ?? BAD_REVISION;
  progress.print(
    run.app
      ? `3. deploy a bad commit: pushed ${shortSha(bad)}, whose deploy fails after it is published`
      : `3. deploy a bad revision: ${bad}, whose stand-in deploy fails`,
  );
  const sent = sentFrom(run);
  const { answer, deployment } = await deployAndFollow(session, {
    action: 'deploy',
    group: GROUP_NAME,
    revision: bad,
  });
  // The canary's way back is a command of its own, sent as the deployment ended.
  const restored = () =>
    sent().some(
      (c) =>
        c.parameters.revision?.[0] === good &&
        c.invocations.some((i) => i.instanceId === answer.canary && i.status === 'Success'),
    );
  // Its tags come with its status event, which the status queue batches for a moment.
  const status = await settle(
    session,
    (s) =>
      restored() &&
      sent().every((c) => isTerminalStatus(c.status)) &&
      s.instances.every((i) => i.sha === good && i.lastDeploy?.result === 'success'),
  );
  const failure = deployment.failures[0];
  const why = failure ? `exit ${failure.exitCode ?? '-'}: ${failure.reason}` : 'no failure on record';
  const canaryNote = restored() ? 'canary: failed, restored to the release' : 'canary: failed, not restored';
  showStep(session, status, new Map([[answer.canary ?? '', canaryNote]]));
  progress.print(
    `${deployment.id} ${deployment.phase} on canary ${failure?.instanceId ?? '-'} (${why}); release kept at ${status.release?.sha}`,
  );
  if (deployment.phase !== 'failed')
    problems.push(`${deployment.id} of the bad commit ended ${deployment.phase}`);
  if (failure?.instanceId !== answer.canary) {
    problems.push(
      `${deployment.id} names ${failure?.instanceId ?? 'no instance'} as failed, not the canary ${answer.canary}`,
    );
  }
  if (status.release?.sha !== good)
    problems.push(`the release is ${status.release?.sha}, not ${good}, after the bad commit`);
  if (!restored())
    problems.push(`the canary ${answer.canary} was not brought back to the release ${shortSha(good)}`);
  const reached = sent()
    .filter((c) => c.parameters.revision?.[0] === bad)
    .flatMap((c) => c.invocations.map((i) => i.instanceId));
  if (reached.length !== 1)
    problems.push(`the bad commit was sent to ${reached.length} instance(s), not the canary only`);
  checkAllOn(session, status, good, `after ${deployment.id} failed`);
  return bad;
}

/** Step 4: one more instance; it deploys the release, not the bad branch head. */
async function scaleOutAtRelease(session: Session, good: string, bad: string): Promise<void> {
  const { opts, run, progress, problems } = session;
  const before = new Set(run.instances().map((i) => i.id));
  const count = opts.instances + 1;
  progress.print(`4. scale-out to ${count} instances: launches deploy the release ${shortSha(good)}`);
  run.scaleTo(count);
  await run.waitFor(`${count} instances InService`, () => run.settled(), session.deadline - Date.now());
  const joined = run.instances().filter((i) => !before.has(i.id));
  const status = await settle(session, (s) =>
    s.instances.every((i) => before.has(i.instanceId) || i.lastDeploy !== undefined),
  );
  showStep(session, status, new Map(joined.map((i) => [i.id, 'new'])));
  const shas = joined.map((i) => status.instances.find((s) => s.instanceId === i.id)?.sha);
  progress.print(
    `new instance ${joined.map((i) => i.id).join(', ') || '(none)'} deployed ${shas.map(shortSha).join(', ')}: the release ${good}${run.app ? `, not the branch head ${bad}` : ''}`,
  );
  if (joined.length !== 1 || shas.some((sha) => sha !== good)) {
    problems.push(
      `the new instance(s) run ${shas.map(shortSha).join(', ') || 'nothing'}, not the release ${shortSha(good)}`,
    );
  }
  checkAllOn(session, status, good, 'after the scale-out at the release');
}

/** Step 5: rollback: the release's previous SHA deployed canary-first and promoted. */
async function rollBack(session: Session, first: string, good: string): Promise<void> {
  const { progress, problems } = session;
  progress.print(`5. roll back to the release's previous, ${shortSha(first)}`);
  const { answer, deployment } = await deployAndFollow(session, {
    action: 'rollback',
    group: GROUP_NAME,
    reason: 'npm start rehearses a rollback',
  });
  const status = await settle(session, (s) => s.instances.every((i) => i.sha === first));
  showStep(session, status, new Map([[answer.canary ?? '', 'canary']]));
  progress.print(
    `${deployment.id} rollback ${deployment.phase}: release ${status.release?.sha}, previous ${status.release?.previous}`,
  );
  if (deployment.phase !== 'promoted')
    problems.push(`rollback ${deployment.id} ended ${deployment.phase}, not promoted`);
  if (status.release?.sha !== first || status.release.previous !== good) {
    problems.push(
      `after the rollback the release is ${status.release?.sha} (previous ${status.release?.previous}), not ${first} (previous ${good})`,
    );
  }
  checkAllOn(session, status, first, `after rollback ${deployment.id}`);
}

/** Ends the flow with the group at --instances again (what `--keep` leaves to the AWS CLI, the SDK and `npx selfdeploy`). */
async function scaleBackIn({ opts, run, progress, deadline }: Session): Promise<void> {
  progress.print(`scaling back in to ${opts.instances} instance(s): Auto Scaling terminates the newest`);
  run.scaleTo(opts.instances);
  await run.waitFor(`${opts.instances} instance(s) InService`, () => run.settled(), deadline - Date.now());
  progress.update(true);
}

type DeployStarted = Extract<OperatorAnswer, { action: 'deploy' | 'rollback' }>;

/**
 * Starts a deploy or rollback as the Lambda console's Test tab does and follows it as the
 * CLI does: polls `status` until it is no longer in flight, printing each phase.
 */
async function deployAndFollow(
  session: Session,
  action: OperatorAction,
): Promise<{ answer: DeployStarted; deployment: Deployment }> {
  const { progress } = session;
  progress.print(`invoking ${JSON.stringify(action)}`);
  const answer = (await operate(session.run, action)) as DeployStarted;
  progress.print(`the orchestrator answered: ${answer.summary}`);
  let phase = '';
  const status = await pollStatus(session, `${answer.deploymentId} to end`, (s) => {
    if (s.deployment?.id !== answer.deploymentId) return true;
    if (s.deployment.phase !== phase) {
      phase = s.deployment.phase;
      progress.print(`${answer.deploymentId} ${phase}`);
    }
    return false;
  });
  const deployment = status.lastDeployment;
  if (deployment?.id !== answer.deploymentId) {
    throw new Error(`${answer.deploymentId} ended, but the group's last deployment is ${deployment?.id}`);
  }
  return { answer, deployment };
}

/** Runs an operator action through the function; its answer, or an error with the function's own message. */
async function operate(run: LocalRun, action: OperatorAction): Promise<OperatorAnswer> {
  const routed = (await run.orchestrator.invoke(action)) as { result: OperatorAnswer };
  return routed.result;
}

/**
 * Polls the `status` action until `done` holds; throws naming `what` at --timeout. A failed
 * poll (throttling past the SDK's retries) is tried again: status only reads.
 */
async function pollStatus(
  session: Session,
  what: string,
  done: (status: GroupStatus) => boolean,
): Promise<GroupStatus> {
  let error = '';
  for (;;) {
    try {
      const status = (await operate(session.run, { action: 'status', group: GROUP_NAME })) as GroupStatus;
      if (done(status)) return status;
    } catch (failed) {
      error = `; the last status failed: ${(failed as Error).message}`;
    }
    if (Date.now() > session.deadline) {
      throw new Error(`timed out after ${session.opts.timeout}s waiting for ${what}${error}`);
    }
    // Each poll costs a few reads per 50 instances; throttled, each also slows the SDK's adaptive retries.
    const interval = session.compact || session.opts.throttle > 0 ? 1000 : 250;
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/**
 * The group's status once `settled` holds, or as it is after SETTLE_MS: the checks that
 * follow say what did not happen, rather than a bare timeout.
 */
async function settle(session: Session, settled: (status: GroupStatus) => boolean): Promise<GroupStatus> {
  const limit = Date.now() + SETTLE_MS;
  let last: GroupStatus | undefined;
  try {
    return await pollStatus(
      { ...session, deadline: Math.min(limit, session.deadline) },
      'the group to settle',
      (s) => {
        last = s;
        return settled(s);
      },
    );
  } catch (error) {
    if (last === undefined) throw error;
    return last;
  }
}

/** The commands sent from now on, as a function of when it is asked. */
function sentFrom(run: LocalRun): () => Command[] {
  const before = new Set(run.plane.ssm.commands().map((c) => c.id));
  return () => run.plane.ssm.commands().filter((c) => !before.has(c.id));
}

/** Records a problem for each instance not in service on `sha`: its tag, and its `current/REVISION` on a real deploy. */
function checkAllOn(session: Session, status: GroupStatus, sha: string, when: string): void {
  const { run, problems } = session;
  const desired = run.plane.autoScaling.group(GROUP_NAME).desiredCapacity;
  if (status.instances.length !== desired) {
    problems.push(`${status.instances.length} instance(s) ${when}, desired ${desired}`);
  }
  for (const instance of status.instances) {
    const deployed = run.app ? run.revisionOf(instance.instanceId) : instance.sha;
    if (instance.lifecycleState !== 'InService' || instance.sha !== sha || deployed !== sha) {
      problems.push(
        `${instance.instanceId} is ${instance.lifecycleState} on ${shortSha(instance.sha)} (deployed: ${shortSha(deployed)}) ${when}, not on ${shortSha(sha)}`,
      );
    }
  }
}

/** The instances as status shows them, with a note each: a table, or counts above COMPACT_ABOVE_INSTANCES. */
function showStep(
  { compact, progress }: Session,
  status: GroupStatus,
  notes: ReadonlyMap<string, string>,
  extra: readonly string[][] = [],
): void {
  // The live lines first, so they end with the state the table shows.
  progress.update(true);
  const rows = [
    ...status.instances.map((i) => [
      i.instanceId,
      i.lifecycleState,
      shortSha(i.sha),
      lastDeploy(i),
      notes.get(i.instanceId) ?? (i.drift ? 'drift' : ''),
    ]),
    ...extra,
  ];
  if (!compact) {
    progress.block(`${table(['INSTANCE', 'LIFECYCLE', 'SHA', 'LAST DEPLOY', 'NOTE'], rows)}\n`);
    return;
  }
  const counts = new Map<string, number>();
  const count = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1);
  for (const [, state, sha, last, note] of rows) {
    count(`${state} on ${sha}, last deploy ${last}`);
    if (note) count(note);
  }
  progress.block(`${rows.length} instances: ${[...counts].map(([key, n]) => `${n} ${key}`).join('; ')}\n`);
}

/** An instance's last deploy as status's tag records it: result, exit code, and the SHA when it is not the one it runs. */
function lastDeploy(instance: InstanceStatus): string {
  const last = instance.lastDeploy;
  if (last === undefined) return '-';
  const code = last.result === 'failure' && last.exitCode !== undefined ? ` (exit ${last.exitCode})` : '';
  const of = last.sha !== undefined && last.sha !== instance.sha ? ` of ${shortSha(last.sha)}` : '';
  return `${last.result}${code}${of}`;
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
