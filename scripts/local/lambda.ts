import { type ChildProcess, fork } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import type { HostMessage, WorkerMessage } from './lambda-messages';

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
}

/** One finished invocation. */
export interface InvocationRecord {
  readonly event: unknown;
  readonly ms: number;
  readonly result?: unknown;
  readonly error?: { name: string; message: string };
}

/** A function invocation that failed; Lambda would retry it when invoked asynchronously. */
export class InvocationError extends Error {
  public constructor(
    public readonly errorName: string,
    message: string,
  ) {
    super(`${errorName}: ${message}`);
    this.name = 'InvocationError';
  }
}

/**
 * Runs a Lambda handler in its own Node process, as Lambda runs it in its own container:
 * loaded once with the function's environment, invoked with the event and a context whose
 * remaining time counts down to the timeout. The process's output is the function's log.
 */
export class LocalLambda {
  /** Every finished invocation, in order of finishing. */
  public readonly invocations: InvocationRecord[] = [];
  readonly #pending = new Map<
    number,
    {
      event: unknown;
      started: number;
      resolve: (value: unknown) => void;
      reject: (error: Error) => void;
      timer: NodeJS.Timeout;
    }
  >();
  #nextId = 0;

  private constructor(
    private readonly child: ChildProcess,
    private readonly log: WriteStream,
    private readonly timeoutMs: number,
  ) {
    child.on('message', (message: WorkerMessage) => this.#settle(message));
    child.on('exit', (code) => {
      for (const [id, pending] of this.#pending) {
        clearTimeout(pending.timer);
        this.#pending.delete(id);
        pending.reject(new InvocationError('Runtime.ExitError', `the function process exited (${code})`));
      }
    });
  }

  /** Starts the function's process and waits for its cold start; throws if the module fails to load. */
  public static async start(options: LocalLambdaOptions): Promise<LocalLambda> {
    const log = createWriteStream(options.logFile, { flags: 'a' });
    const child = fork(
      join(__dirname, 'lambda-worker.ts'),
      [options.modulePath, options.exportName ?? 'handler'],
      {
        env: { ...process.env, ...options.env },
        execArgv: ['--require', require.resolve('tsx/cjs')],
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      },
    );
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (message: WorkerMessage) => {
        if (message.kind === 'ready') resolve();
        if (message.kind === 'init-failed')
          reject(new InvocationError(message.error.name, message.error.message));
      };
      child.on('message', onMessage);
      child.once('exit', (code) =>
        reject(
          new Error(`the function process exited during its cold start (${code}); see ${options.logFile}`),
        ),
      );
    });
    return new LocalLambda(child, log, (options.timeoutSeconds ?? 300) * 1000);
  }

  /** Invokes the function and waits for its result; rejects with InvocationError when it throws or times out. */
  public invoke(event: unknown): Promise<unknown> {
    const id = this.#nextId++;
    const started = Date.now();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        // Lambda would freeze the sandbox here; this process cannot stop one of its
        // concurrent invocations, so the late result is dropped instead.
        this.#pending.delete(id);
        const error = {
          name: 'Sandbox.Timedout',
          message: `Task timed out after ${this.timeoutMs / 1000} seconds`,
        };
        this.invocations.push({ event, ms: Date.now() - started, error });
        reject(new InvocationError(error.name, error.message));
      }, this.timeoutMs);
      this.#pending.set(id, { event, started, resolve, reject, timer });
      const message: HostMessage = { id, event, deadline: started + this.timeoutMs };
      this.child.send(message);
    });
  }

  /** Stops the function's process. */
  public async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill();
      await exited;
    }
    await new Promise((resolve) => this.log.end(resolve));
  }

  #settle(message: WorkerMessage): void {
    if (message.kind !== 'result' && message.kind !== 'error') return;
    const pending = this.#pending.get(message.id);
    if (!pending) return;
    this.#pending.delete(message.id);
    clearTimeout(pending.timer);
    const ms = Date.now() - pending.started;
    if (message.kind === 'result') {
      this.invocations.push({ event: pending.event, ms, result: message.result });
      pending.resolve(message.result);
    } else {
      this.invocations.push({ event: pending.event, ms, error: message.error });
      pending.reject(new InvocationError(message.error.name, message.error.message));
    }
  }
}
