/**
 * A child process of LocalLambda hosting several execution environments of one function.
 * Each environment is a fresh evaluation of the function's own modules (a module registry
 * of its own, so its module-level state — SDK clients and their retry token buckets,
 * configuration, telemetry — is its own, as a separate Lambda sandbox's is), while the
 * library code under node_modules is loaded once per process and shared, being code
 * without per-client state. Its stdout/stderr are the function's log.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import Module from 'node:module';
import { dirname, extname, isAbsolute, sep } from 'node:path';
import type { FunctionError, HostMessage, WorkerMessage } from './lambda-messages';

const [modulePath = '', exportName = 'handler', functionName = 'selfdeploy-orchestrator'] =
  process.argv.slice(2);

type Handler = (event: unknown, context: unknown) => Promise<unknown>;

/** Node's loader internals used to evaluate modules into a registry of our own. */
interface Loader {
  _resolveFilename(request: string, parent: NodeJS.Module): string;
  _nodeModulePaths(from: string): string[];
  _extensions: Record<string, (module: NodeJS.Module, filename: string) => void>;
  new (id: string, parent?: NodeJS.Module): NodeJS.Module;
}
const loader = Module as unknown as Loader;

const environments = new Map<string, Handler>();

/**
 * What each running invocation writes, for the log tail Invoke answers with `LogType: Tail`:
 * the environments of a process share its stdout and stderr, so writes are told apart by
 * the invocation whose asynchronous context made them.
 */
const invocationLog = new AsyncLocalStorage<{ tail: string }>();
/** The most of an invocation's log kept for its tail (Lambda answers the last 4 KB). */
const KEPT_LOG_CHARS = 8192;

for (const stream of [process.stdout, process.stderr]) {
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    const log = invocationLog.getStore();
    if (log) {
      const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8');
      log.tail = (log.tail + text).slice(-KEPT_LOG_CHARS);
    }
    return write(chunk, ...rest);
  }) as typeof stream.write;
}

function send(message: WorkerMessage): void {
  process.send?.(message);
}

function context(deadline: number, requestId: string, environment: string) {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${process.env.AWS_REGION ?? 'us-east-1'}:123456789012:function:${functionName}`,
    memoryLimitInMB: '256',
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: environment,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

/** The function's own files: everything but packages and Node's built-ins. */
function ownFile(filename: string): boolean {
  return isAbsolute(filename) && !filename.includes(`${sep}node_modules${sep}`);
}

/** Evaluates `entry` and the function's own modules it requires afresh, into a new registry. */
function loadIsolated(entry: string): Record<string, unknown> {
  const registry = new Map<string, NodeJS.Module>();
  const load = (filename: string, parent?: NodeJS.Module): unknown => {
    const cached = registry.get(filename);
    if (cached) return cached.exports;
    const fresh = new loader(filename, parent);
    fresh.filename = filename;
    fresh.paths = loader._nodeModulePaths(dirname(filename));
    registry.set(filename, fresh);
    // Node's compiled wrapper calls the module's own require for every require() in the file.
    fresh.require = ((request: string) => {
      const resolved = loader._resolveFilename(request, fresh);
      return ownFile(resolved) ? load(resolved, fresh) : require(resolved);
    }) as NodeJS.Require;
    const compile = loader._extensions[extname(filename)] ?? loader._extensions['.js'];
    compile?.(fresh, filename);
    fresh.loaded = true;
    return fresh.exports;
  };
  return load(loader._resolveFilename(entry, module)) as Record<string, unknown>;
}

function create(environment: string): void {
  const started = Date.now();
  try {
    const loaded = loadIsolated(modulePath);
    const candidate = loaded[exportName];
    if (typeof candidate !== 'function')
      throw new Error(`${modulePath} does not export a function ${exportName}`);
    environments.set(environment, candidate as Handler);
    send({ kind: 'ready', environment, initMs: Date.now() - started });
  } catch (error) {
    send({ kind: 'init-failed', environment, error: describe(error) });
  }
}

function main(): void {
  process.on('message', (message: HostMessage) => {
    if (message.kind === 'create') {
      create(message.environment);
      return;
    }
    if (message.kind === 'dispose') {
      environments.delete(message.environment);
      return;
    }
    const requestId = randomUUID();
    const handler = environments.get(message.environment);
    if (!handler) {
      send({
        kind: 'error',
        id: message.id,
        requestId,
        error: { name: 'Runtime.Unknown', message: `no environment ${message.environment}` },
        log: '',
      });
      return;
    }
    const written = { tail: '' };
    const started = Date.now();
    invocationLog.run(written, () => {
      // The lines Lambda writes around every invocation, which a log tail shows.
      process.stdout.write(`START RequestId: ${requestId} Version: $LATEST\n`);
      // A handler that throws synchronously fails its invocation, as a rejected promise does.
      Promise.resolve()
        .then(() => handler(message.event, context(message.deadline, requestId, message.environment)))
        .then(
          (result) => ({ ok: true as const, result }),
          (error: unknown) => {
            const described = describe(error);
            // The Node.js runtime logs an unhandled error before it answers it.
            process.stderr.write(
              `${new Date().toISOString()}\t${requestId}\tERROR\tInvoke Error \t${JSON.stringify({
                errorType: described.name,
                errorMessage: described.message,
                stack: described.trace,
              })}\n`,
            );
            return { ok: false as const, error: described };
          },
        )
        .then((outcome) => {
          const ms = Date.now() - started;
          process.stdout.write(`END RequestId: ${requestId}\n`);
          process.stdout.write(
            `REPORT RequestId: ${requestId}\tDuration: ${ms.toFixed(2)} ms\tBilled Duration: ${Math.max(1, Math.ceil(ms))} ms\tMemory Size: 256 MB\tMax Memory Used: ${Math.round(process.memoryUsage().rss / 1048576)} MB\t\n`,
          );
          const log = written.tail;
          send(
            outcome.ok
              ? { kind: 'result', id: message.id, requestId, result: outcome.result, log }
              : { kind: 'error', id: message.id, requestId, error: outcome.error, log },
          );
        });
    });
  });
}

function describe(error: unknown): FunctionError {
  return error instanceof Error
    ? { name: error.name, message: error.message, trace: (error.stack ?? '').split('\n') }
    : { name: 'Error', message: String(error) };
}

main();
