import { type ChildProcess, fork } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from './control-plane/clock';
import type { InvokeOutcome, LocalFunction } from './control-plane/lambda-api';
import type { FunctionError, HostMessage, WorkerMessage } from './lambda-messages';

export interface LocalLambdaOptions {
  /** Absolute path of the handler module. */
  readonly modulePath: string;
  /** @default 'handler' */
  readonly exportName?: string;
  /** The function's environment (added to this process's PATH/HOME etc.). */
  readonly env: Readonly<Record<string, string>>;
  /** Real seconds an invocation may run before it counts as failed (Lambda's timeout). @default 300 */
  readonly timeoutSeconds?: number;
  /** File the function's log (its stdout and stderr) is appended to. */
  readonly logFile: string;
  /** Reserved concurrency: this function never runs more executions at once. @default none */
  readonly reservedConcurrency?: number;
  /** The account's concurrency, shared by the functions given the same pool. @default a pool of 1000 of its own */
  readonly account?: ConcurrencyPool;
  /**
   * Execution environments hosted by one worker process. Each is a fresh evaluation of the
   * function's modules (its own SDK clients); a process shares only library code and the CPU.
   * @default 50
   */
  readonly environmentsPerProcess?: number;
  /** The clock async retries of throttled invocations wait on. @default real time */
  readonly clock?: Clock;
}

/** Concurrent executions an account allows across its functions (AWS's default quota: 1000). */
export class ConcurrencyPool {
  public inUse = 0;
  public constructor(public readonly limit = 1000) {}
}

/** One finished invocation. */
export interface InvocationRecord {
  readonly event: unknown;
  readonly ms: number;
  readonly result?: unknown;
  readonly error?: { name: string; message: string };
  /** The execution environment it ran in. */
  readonly environment: string;
  /** The function's revision (1, then one more per update()) whose code and configuration it ran. */
  readonly revision: number;
  /** Real ms of the environment's cold start (module initialisation), when this invocation made it. */
  readonly initMs?: number;
}

/** A function invocation that failed; Lambda would retry it when invoked asynchronously. */
export class InvocationError extends Error {
  public constructor(
    public readonly errorName: string,
    /** The function's own message, without the name. */
    public readonly errorMessage: string,
  ) {
    super(`${errorName}: ${errorMessage}`);
    this.name = 'InvocationError';
  }
}

/** Lambda's answer when a concurrency limit is reached. */
export const THROTTLED = 'TooManyRequestsException';

/**
 * Lambda's async queue retries a throttled event with backoff for up to the maximum event
 * age (6 hours): here from 1 s doubling to 5 minutes, in simulated seconds.
 */
export const ASYNC_THROTTLE_RETRY = { firstSeconds: 1, maxSeconds: 300, maxAgeSeconds: 6 * 3600 } as const;

interface Worker {
  readonly child: ChildProcess;
  /** The function revision whose code and environment variables the process was started with. */
  readonly revision: number;
  environments: number;
}

/** What an update() changes: the function's code (its handler module) and its environment variables. */
export interface FunctionUpdate {
  readonly modulePath?: string;
  readonly exportName?: string;
  readonly env?: Readonly<Record<string, string>>;
}

interface Environment {
  readonly id: string;
  readonly worker: Worker;
  readonly ready: Promise<number>;
  busy: boolean;
  dead: boolean;
}

/** How one run in an environment ended: a result or an error, with what it logged. */
interface Settled {
  readonly requestId: string;
  readonly result?: unknown;
  readonly error?: FunctionError;
  readonly log: string;
}

interface Pending {
  readonly event: unknown;
  readonly started: number;
  readonly environment: Environment;
  readonly initMs: number | undefined;
  readonly settle: (settled: Settled) => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * Runs a Lambda handler as Lambda runs it: each concurrent invocation in an execution
 * environment of its own (a cold start loads the module afresh, with its own SDK clients),
 * one invocation per environment at a time, environments reused; past the reserved or the
 * account's concurrency an invocation is throttled. Environments live in worker processes,
 * several per process; the processes' output is the function's log.
 */
export class LocalLambda implements LocalFunction {
  /** Every finished invocation, in order of finishing. */
  public readonly invocations: InvocationRecord[] = [];
  /** Invocations refused with TooManyRequestsException. */
  public throttles = 0;
  /** The most executions that ran at once. */
  public peakConcurrency = 0;
  readonly #pending = new Map<number, Pending>();
  readonly #workers: Worker[] = [];
  readonly #environments: Environment[] = [];
  readonly #waiting = new Map<string, { resolve: (ms: number) => void; reject: (error: Error) => void }>();
  readonly #account: ConcurrencyPool;
  #running = 0;
  #nextId = 0;
  #nextEnvironment = 0;
  #stopped = false;
  /** The code and configuration new environments get; update() replaces it. */
  #code: Required<FunctionUpdate>;
  #revision = 1;

  private constructor(
    private readonly options: LocalLambdaOptions,
    private readonly log: WriteStream,
  ) {
    this.#account = options.account ?? new ConcurrencyPool();
    this.#code = {
      modulePath: options.modulePath,
      exportName: options.exportName ?? 'handler',
      env: options.env,
    };
  }

  /** Makes the first execution environment and waits for its cold start; throws if the module fails to load. */
  public static async start(options: LocalLambdaOptions): Promise<LocalLambda> {
    const lambda = new LocalLambda(options, createWriteStream(options.logFile, { flags: 'a' }));
    const first = lambda.#createEnvironment();
    try {
      await first.ready;
    } catch (error) {
      await lambda.stop();
      throw error;
    }
    return lambda;
  }

  /** Executions running now. */
  public get concurrency(): number {
    return this.#running;
  }

  /** Execution environments made so far (cold starts). */
  public get environments(): number {
    return this.#nextEnvironment;
  }

  /**
   * Invokes the function synchronously and waits for its result; rejects with InvocationError
   * when it throws, times out, or is throttled (`TooManyRequestsException`, nothing run).
   */
  public async invoke(event: unknown): Promise<unknown> {
    const outcome = await this.invokeWithLog(event);
    if ('throttled' in outcome) throw new InvocationError(THROTTLED, 'Rate Exceeded.');
    if (outcome.error) throw new InvocationError(outcome.error.name, outcome.error.message);
    return outcome.result;
  }

  /**
   * One synchronous invocation as Lambda's Invoke API sees it: its result or its error (with
   * the stack as `trace`) and what it logged, or the concurrency limit that throttled it.
   */
  public async invokeWithLog(event: unknown): Promise<InvokeOutcome> {
    const limit = this.options.reservedConcurrency ?? Number.POSITIVE_INFINITY;
    if (this.#running >= limit || this.#account.inUse >= this.#account.limit) {
      this.throttles++;
      return {
        throttled:
          this.#running >= limit
            ? 'ReservedFunctionConcurrentInvocationLimitExceeded'
            : 'ConcurrentInvocationLimitExceeded',
      };
    }
    this.#running++;
    this.#account.inUse++;
    this.peakConcurrency = Math.max(this.peakConcurrency, this.#running);
    let environment = this.#environments.find(
      (e) => !e.busy && !e.dead && e.worker.revision === this.#revision,
    );
    const cold = environment === undefined;
    environment ??= this.#createEnvironment();
    environment.busy = true;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.#running--;
      this.#account.inUse--;
      const used = environment as Environment;
      used.busy = false;
      // An environment of an earlier revision serves no further invocation.
      if (used.worker.revision !== this.#revision && !used.dead) this.#discard(used);
    };
    const started = Date.now();
    let initMs: number | undefined;
    try {
      const ms = await environment.ready;
      if (cold) initMs = ms;
    } catch (error) {
      release();
      const failure =
        error instanceof InvocationError ? error : new InvocationError('Runtime.Unknown', String(error));
      const described = { name: failure.errorName, message: failure.errorMessage };
      this.invocations.push({
        event,
        ms: Date.now() - started,
        error: described,
        environment: environment.id,
        revision: environment.worker.revision,
      });
      return { requestId: randomUUID(), error: described, log: '' };
    }
    try {
      return await this.#run(environment, event, initMs);
    } finally {
      release();
    }
  }

  /**
   * Invokes as an EventBridge target does (asynchronously): Lambda's async queue retries a
   * throttled event with backoff (ASYNC_THROTTLE_RETRY); other failures reject, for the
   * caller's own retries.
   */
  public async invokeAsync(event: unknown): Promise<unknown> {
    const sleep = (seconds: number) =>
      this.options.clock
        ? this.options.clock.sleep(seconds)
        : new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    let waited = 0;
    for (let delay: number = ASYNC_THROTTLE_RETRY.firstSeconds; ; ) {
      try {
        return await this.invoke(event);
      } catch (error) {
        const throttled = error instanceof InvocationError && error.errorName === THROTTLED;
        if (!throttled || this.#stopped || waited + delay > ASYNC_THROTTLE_RETRY.maxAgeSeconds) throw error;
        await sleep(delay);
        waited += delay;
        delay = Math.min(delay * 2, ASYNC_THROTTLE_RETRY.maxSeconds);
      }
    }
  }

  /**
   * Updates the function's code or environment variables, as UpdateFunctionCode /
   * UpdateFunctionConfiguration do: every invocation from now on runs in a new execution
   * environment with them (a cold start), while invocations already running finish in their
   * old environment, which is then discarded. Omitted parts stay as they were.
   */
  public update(update: FunctionUpdate): void {
    this.#code = { ...this.#code, ...update };
    this.#revision++;
    for (const environment of this.#environments.filter((e) => !e.busy)) this.#discard(environment);
  }

  /** Stops every worker process. */
  public async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(
      this.#workers.map(async ({ child }) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill();
        await exited;
      }),
    );
    await new Promise((resolve) => this.log.end(resolve));
  }

  #run(environment: Environment, event: unknown, initMs: number | undefined): Promise<Settled> {
    const id = this.#nextId++;
    const started = Date.now();
    const timeoutMs = (this.options.timeoutSeconds ?? 300) * 1000;
    return new Promise((settle) => {
      const timer = setTimeout(() => {
        // Lambda stops the sandbox here: the environment is discarded and a late result dropped.
        this.#pending.delete(id);
        this.#discard(environment);
        const error = {
          name: 'Sandbox.Timedout',
          message: `Task timed out after ${(timeoutMs / 1000).toFixed(2)} seconds`,
        };
        this.invocations.push({
          event,
          ms: Date.now() - started,
          error,
          environment: environment.id,
          revision: environment.worker.revision,
          ...(initMs === undefined ? {} : { initMs }),
        });
        settle({ requestId: randomUUID(), error, log: '' });
      }, timeoutMs);
      this.#pending.set(id, { event, started, environment, initMs, settle, timer });
      this.#send(environment.worker, {
        kind: 'invoke',
        id,
        environment: environment.id,
        event,
        deadline: started + timeoutMs,
      });
    });
  }

  #createEnvironment(): Environment {
    const perProcess = this.options.environmentsPerProcess ?? 50;
    const worker =
      this.#workers.find(
        (w) => w.child.exitCode === null && w.revision === this.#revision && w.environments < perProcess,
      ) ?? this.#fork();
    worker.environments++;
    const id = `${new Date().toISOString().slice(0, 10).replace(/-/g, '/')}/[$LATEST]env-${this.#nextEnvironment++}`;
    const ready = new Promise<number>((resolve, reject) => this.#waiting.set(id, { resolve, reject }));
    // Awaited by whoever uses the environment; this keeps an unused failure from going unhandled.
    ready.catch(() => {});
    const environment: Environment = { id, worker, ready, busy: false, dead: false };
    this.#environments.push(environment);
    this.#send(worker, { kind: 'create', environment: id });
    return environment;
  }

  #discard(environment: Environment): void {
    environment.dead = true;
    environment.worker.environments--;
    const index = this.#environments.indexOf(environment);
    if (index >= 0) this.#environments.splice(index, 1);
    this.#send(environment.worker, { kind: 'dispose', environment: environment.id });
    // A process of an earlier revision with no environment left has nothing more to run.
    const { worker } = environment;
    if (worker.revision !== this.#revision && worker.environments === 0 && worker.child.exitCode === null) {
      worker.child.kill();
    }
  }

  #fork(): Worker {
    const code = this.#code;
    const child = fork(join(__dirname, 'lambda-worker.ts'), [code.modulePath, code.exportName], {
      env: { ...process.env, ...code.env },
      execArgv: ['--require', require.resolve('tsx/cjs')],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    child.stdout?.pipe(this.log, { end: false });
    child.stderr?.pipe(this.log, { end: false });
    const worker: Worker = { child, revision: this.#revision, environments: 0 };
    child.on('message', (message: WorkerMessage) => this.#settle(message));
    child.on('exit', (code) => this.#exited(worker, code));
    this.#workers.push(worker);
    return worker;
  }

  #send(worker: Worker, message: HostMessage): void {
    if (worker.child.connected) worker.child.send(message);
  }

  #exited(worker: Worker, code: number | null): void {
    for (const environment of this.#environments.filter((e) => e.worker === worker)) {
      const waiting = this.#waiting.get(environment.id);
      this.#waiting.delete(environment.id);
      waiting?.reject(
        new Error(`the function process exited during its cold start (${code}); see ${this.options.logFile}`),
      );
      this.#discard(environment);
    }
    for (const [id, pending] of this.#pending) {
      if (pending.environment.worker !== worker) continue;
      clearTimeout(pending.timer);
      this.#pending.delete(id);
      pending.settle({
        requestId: randomUUID(),
        error: { name: 'Runtime.ExitError', message: `the function process exited (${code})` },
        log: '',
      });
    }
  }

  #settle(message: WorkerMessage): void {
    if (message.kind === 'ready' || message.kind === 'init-failed') {
      const waiting = this.#waiting.get(message.environment);
      this.#waiting.delete(message.environment);
      if (message.kind === 'ready') {
        waiting?.resolve(message.initMs);
        return;
      }
      const environment = this.#environments.find((e) => e.id === message.environment);
      if (environment) this.#discard(environment);
      waiting?.reject(new InvocationError(message.error.name, message.error.message));
      return;
    }
    const pending = this.#pending.get(message.id);
    if (!pending) return;
    this.#pending.delete(message.id);
    clearTimeout(pending.timer);
    const base = {
      event: pending.event,
      ms: Date.now() - pending.started,
      environment: pending.environment.id,
      revision: pending.environment.worker.revision,
      ...(pending.initMs === undefined ? {} : { initMs: pending.initMs }),
    };
    const { requestId, log } = message;
    if (message.kind === 'result') {
      this.invocations.push({ ...base, result: message.result });
      pending.settle({ requestId, result: message.result, log });
    } else {
      const { name, message: text } = message.error;
      this.invocations.push({ ...base, error: { name, message: text } });
      pending.settle({ requestId, error: message.error, log });
    }
  }
}
