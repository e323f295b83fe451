/**
 * The child process of LocalLambda: loads a handler module once (as a Lambda container's
 * cold start does, with the environment the parent gave it) and runs each invocation the
 * parent sends over IPC. Its stdout/stderr are the function's log.
 */
import { randomUUID } from 'node:crypto';
import type { HostMessage, WorkerMessage } from './lambda-messages';

const [modulePath, exportName = 'handler', functionName = 'selfdeploy-orchestrator'] = process.argv.slice(2);

type Handler = (event: unknown, context: unknown) => Promise<unknown>;

function send(message: WorkerMessage): void {
  process.send?.(message);
}

function context(deadline: number, requestId: string) {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${process.env.AWS_REGION ?? 'us-east-1'}:123456789012:function:${functionName}`,
    memoryLimitInMB: '256',
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

function main(): void {
  let handler: Handler;
  try {
    // require, not import(): the tsx hook this process runs under is the CommonJS one.
    const loaded = require(modulePath as string) as Record<string, unknown>;
    const candidate = loaded[exportName];
    if (typeof candidate !== 'function')
      throw new Error(`${modulePath} does not export a function ${exportName}`);
    handler = candidate as Handler;
  } catch (error) {
    send({ kind: 'init-failed', error: describe(error) });
    return;
  }
  process.on('message', (message: HostMessage) => {
    const requestId = randomUUID();
    handler(message.event, context(message.deadline, requestId)).then(
      (result) => send({ kind: 'result', id: message.id, requestId, result }),
      (error: unknown) => send({ kind: 'error', id: message.id, requestId, error: describe(error) }),
    );
  });
  send({ kind: 'ready' });
}

function describe(error: unknown): { name: string; message: string } {
  return error instanceof Error
    ? { name: error.name, message: error.message }
    : { name: 'Error', message: String(error) };
}

main();
