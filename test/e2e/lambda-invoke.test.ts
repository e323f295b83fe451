import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type InvocationType, InvokeCommand, LambdaClient, type LogType } from '@aws-sdk/client-lambda';
import { ControlPlane } from '../../scripts/local/control-plane/control-plane';
import { LocalLambda } from '../../scripts/local/lambda';
import type { LocalRun } from '../../scripts/local/local-run';
import { FUNCTION_NAME } from '../../scripts/local/orchestrator';
import { localRuns, planeClientConfig } from './support';

// Lambda's Invoke API served by the control plane, called with the unmodified SDK client.
jest.setTimeout(60_000);

const ACCOUNT = '123456789012';
/** A function of the test's own: it echoes, logs, sleeps or throws as its event asks. */
const PROBE_HANDLER = `
exports.handler = async (event) => {
  console.log('probe got', JSON.stringify(event));
  if (event.sleepMs) await new Promise((resolve) => setTimeout(resolve, event.sleepMs));
  if (event.fail) throw new TypeError(event.fail);
  if (event.nothing) return undefined;
  return { echoed: event };
};
`;

function client(plane: ControlPlane): LambdaClient {
  return new LambdaClient(planeClientConfig(plane));
}

interface Answer {
  readonly status?: number;
  readonly payload?: unknown;
  readonly functionError?: string;
  readonly version?: string;
  readonly log?: string;
  /** The error's name, when the call itself failed. */
  readonly error?: string;
  readonly message?: string;
  /** TooManyRequestsException's Reason: which concurrency limit was reached. */
  readonly reason?: string;
}

async function invoke(
  lambda: LambdaClient,
  name: string,
  payload: string | Uint8Array | undefined,
  options: { type?: InvocationType; logType?: LogType; qualifier?: string } = {},
): Promise<Answer> {
  try {
    const out = await lambda.send(
      new InvokeCommand({
        FunctionName: name,
        ...(payload === undefined
          ? {}
          : { Payload: typeof payload === 'string' ? new TextEncoder().encode(payload) : payload }),
        ...(options.type ? { InvocationType: options.type } : {}),
        ...(options.logType ? { LogType: options.logType } : {}),
        ...(options.qualifier ? { Qualifier: options.qualifier } : {}),
      }),
    );
    const text = out.Payload ? new TextDecoder().decode(out.Payload) : '';
    return {
      ...(out.StatusCode === undefined ? {} : { status: out.StatusCode }),
      ...(text === '' ? {} : { payload: JSON.parse(text) }),
      ...(out.FunctionError ? { functionError: out.FunctionError } : {}),
      ...(out.ExecutedVersion ? { version: out.ExecutedVersion } : {}),
      ...(out.LogResult ? { log: Buffer.from(out.LogResult, 'base64').toString('utf8') } : {}),
    };
  } catch (error) {
    const e = error as Error & { $metadata?: { httpStatusCode?: number }; Reason?: string };
    return {
      error: e.name,
      message: e.message,
      ...(e.$metadata?.httpStatusCode ? { status: e.$metadata.httpStatusCode } : {}),
      ...(e.Reason ? { reason: e.Reason } : {}),
    };
  }
}

describe('Invoke of the local orchestrator', () => {
  const start = localRuns();
  let local: LocalRun;
  let lambda: LambdaClient;

  beforeEach(async () => {
    local = await start({ deploy: {} });
    lambda = client(local.plane);
  });

  afterEach(() => lambda.destroy());

  it('runs the unmodified handler: a reconcile answers its summary, with the log tail asked for', async () => {
    const answer = await invoke(lambda, FUNCTION_NAME, '{"action":"reconcile"}', { logType: 'Tail' });

    expect(answer).toMatchObject({
      status: 200,
      version: '$LATEST',
      payload: { kind: 'reconcile', result: expect.any(Object) },
    });
    expect(answer.functionError).toBeUndefined();
    expect(answer.log).toMatch(/^START RequestId: [0-9a-f-]{36} Version: \$LATEST$/m);
    expect(answer.log).toMatch(/^END RequestId: [0-9a-f-]{36}$/m);
    expect(answer.log).toMatch(/^REPORT RequestId: [0-9a-f-]{36}\tDuration: [0-9.]+ ms/m);
  });

  it('answers a malformed action as a function error: Unhandled, InvalidInputError with its trace', async () => {
    const answer = await invoke(lambda, FUNCTION_NAME, '{"action":"launch-rockets"}', { logType: 'Tail' });

    expect(answer).toMatchObject({
      status: 200,
      functionError: 'Unhandled',
      payload: {
        errorType: 'InvalidInputError',
        errorMessage: expect.stringContaining('unknown action "launch-rockets"'),
        trace: expect.arrayContaining([expect.stringContaining('InvalidInputError')]),
      },
    });
    // The runtime logs the error it answers, as Lambda's Node.js runtime does.
    expect(answer.log).toContain('ERROR\tInvoke Error');
  });

  it('reaches the function by name, ARN, partial ARN and $LATEST; anything else is not found', async () => {
    const arn = `arn:aws:lambda:us-east-1:${ACCOUNT}:function:${FUNCTION_NAME}`;
    const reconcile = '{"action":"reconcile"}';
    const byName = await Promise.all([
      invoke(lambda, arn, reconcile),
      invoke(lambda, `${ACCOUNT}:function:${FUNCTION_NAME}`, reconcile),
      invoke(lambda, `${FUNCTION_NAME}:$LATEST`, reconcile),
      invoke(lambda, FUNCTION_NAME, reconcile, { qualifier: '$LATEST' }),
    ]);
    const [unknown, otherAccount, alias] = await Promise.all([
      invoke(lambda, 'no-such-function', reconcile),
      invoke(lambda, `arn:aws:lambda:us-east-1:210987654321:function:${FUNCTION_NAME}`, reconcile),
      invoke(lambda, FUNCTION_NAME, reconcile, { qualifier: 'prod' }),
    ]);

    expect(byName.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    expect(unknown).toMatchObject({
      error: 'ResourceNotFoundException',
      status: 404,
      message: `Function not found: arn:aws:lambda:us-east-1:${ACCOUNT}:function:no-such-function`,
    });
    expect(otherAccount).toMatchObject({ error: 'ResourceNotFoundException', status: 404 });
    expect(alias).toMatchObject({
      error: 'ResourceNotFoundException',
      message: `Function not found: ${arn}:prod`,
    });
  });

  it('queues an Event invocation (202) that then runs, and checks a DryRun (204) without running it', async () => {
    const before = local.orchestrator.lambda.invocations.length;

    const queued = await invoke(lambda, FUNCTION_NAME, '{"action":"reconcile"}', { type: 'Event' });
    const dry = await invoke(lambda, FUNCTION_NAME, '{"action":"reconcile"}', { type: 'DryRun' });
    await local.waitFor(
      'the queued invocation',
      () => local.orchestrator.lambda.invocations.length > before,
      20_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 300));

    expect(queued).toEqual({ status: 202 });
    expect(dry).toEqual({ status: 204 });
    expect(local.orchestrator.lambda.invocations.length).toBe(before + 1);
  });

  it('refuses a payload that is not JSON, and payloads over the 6 MB (sync) and 1 MB (async) quotas', async () => {
    const big = (bytes: number) => `"${'x'.repeat(bytes - 2)}"`;

    const [notJson, tooBig, tooBigAsync, justFits] = await Promise.all([
      invoke(lambda, FUNCTION_NAME, '{"action": reconcile'),
      invoke(lambda, FUNCTION_NAME, big(6_291_457)),
      invoke(lambda, FUNCTION_NAME, big(1_048_577), { type: 'Event' }),
      invoke(lambda, FUNCTION_NAME, big(1_048_576), { type: 'DryRun' }),
    ]);

    expect(notJson).toMatchObject({
      error: 'InvalidRequestContentException',
      status: 400,
      message: expect.stringMatching(/^Could not parse request body into json: /),
    });
    expect(tooBig).toMatchObject({
      error: 'RequestEntityTooLargeException',
      status: 413,
      message: 'Request must be smaller than 6291456 bytes for the InvokeFunction operation',
    });
    expect(tooBigAsync).toMatchObject({
      error: 'RequestEntityTooLargeException',
      status: 413,
      message: '1048577 byte payload is too large for the Event invocation type (limit 1048576 bytes)',
    });
    expect(justFits).toEqual({ status: 204 });
  });

  it('is reached by the SDK from the environment the control plane gives its clients', async () => {
    const env = local.plane.env();
    const fromEnv = new LambdaClient({
      endpoint: env.AWS_ENDPOINT_URL_LAMBDA,
      region: env.AWS_REGION,
      credentials: local.plane.credentials,
      maxAttempts: 1,
    });

    const answer = await invoke(fromEnv, FUNCTION_NAME, '{"action":"reconcile"}');
    fromEnv.destroy();

    expect(env.AWS_ENDPOINT_URL_LAMBDA).toBe(local.plane.endpoint);
    expect(env.AWS_ENDPOINT_URL_EC2).toBe(local.plane.endpoint);
    expect(answer).toMatchObject({ status: 200, payload: { kind: 'reconcile' } });
  });
});

describe('Invoke of a function of its own', () => {
  let plane: ControlPlane;
  let fn: LocalLambda;
  let lambda: LambdaClient;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lambda-invoke-'));
    writeFileSync(join(dir, 'probe.js'), PROBE_HANDLER);
    plane = await ControlPlane.start({ timeScale: 100, retryDelaysSeconds: [1, 1] });
    fn = await LocalLambda.start({
      modulePath: join(dir, 'probe.js'),
      env: {},
      logFile: join(dir, 'probe.log'),
      reservedConcurrency: 1,
      clock: plane.clock,
    });
    plane.functions.register('probe', fn);
    lambda = client(plane);
  });

  afterAll(async () => {
    lambda.destroy();
    await fn.stop();
    await plane.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers TooManyRequestsException while the function’s reserved concurrency is in use', async () => {
    const slow = invoke(lambda, 'probe', '{"sleepMs":1000}');
    await new Promise((resolve) => setTimeout(resolve, 200));

    const refused = await invoke(lambda, 'probe', '{}');
    const done = await slow;

    expect(refused).toEqual({
      error: 'TooManyRequestsException',
      status: 429,
      message: 'Rate Exceeded.',
      reason: 'ReservedFunctionConcurrentInvocationLimitExceeded',
    });
    expect(done).toMatchObject({ status: 200, payload: { echoed: { sleepMs: 1000 } } });
  });

  it('answers what the handler throws with its type, message and stack, and null for no result', async () => {
    const [thrown, nothing, empty] = await Promise.all([
      invoke(lambda, 'probe', '{"fail":"boom"}', { logType: 'Tail' }),
      new Promise((resolve) => setTimeout(resolve, 50)).then(() =>
        invoke(lambda, 'probe', '{"nothing":true}'),
      ),
      new Promise((resolve) => setTimeout(resolve, 100)).then(() => invoke(lambda, 'probe', undefined)),
    ]);

    expect(thrown).toMatchObject({
      status: 200,
      functionError: 'Unhandled',
      payload: { errorType: 'TypeError', errorMessage: 'boom', trace: expect.any(Array) },
    });
    expect((thrown.payload as { trace: string[] }).trace[0]).toBe('TypeError: boom');
    expect(thrown.log).toContain('probe got {"fail":"boom"}');
    expect(nothing).toEqual({ status: 200, version: '$LATEST', payload: null });
    // No payload is the empty event.
    expect(empty).toMatchObject({ status: 200, payload: { echoed: {} } });
  });

  it('keeps only the last 4 KB of the log in the tail', async () => {
    const answer = await invoke(lambda, 'probe', JSON.stringify({ pad: 'y'.repeat(9000) }), {
      logType: 'Tail',
    });

    expect(Buffer.byteLength(answer.log ?? '')).toBeLessThanOrEqual(4096);
    expect(answer.log).toMatch(/REPORT RequestId: /);
  });

  it('retries a failed Event invocation twice, as Lambda’s asynchronous invocation does', async () => {
    const before = fn.invocations.length;

    const queued = await invoke(lambda, 'probe', '{"fail":"again"}', { type: 'Event' });
    const deadline = Date.now() + 10_000;
    while (fn.invocations.length < before + 3 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await new Promise((resolve) => setTimeout(resolve, 200));

    expect(queued).toEqual({ status: 202 });
    expect(fn.invocations.slice(before).map((i) => i.error?.name)).toEqual([
      'TypeError',
      'TypeError',
      'TypeError',
    ]);
  });
});
