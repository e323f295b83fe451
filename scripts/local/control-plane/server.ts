import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiError } from './api-error';
import type { AutoScaling } from './auto-scaling';
import { QueryInput, queryError, queryInstanceIds, queryResponse, runQuery } from './auto-scaling-protocol';
import type { Ec2 } from './ec2';
import { EC2_VERSION, Ec2Input, ec2Error, ec2InstanceIds, ec2Response, runEc2 } from './ec2-protocol';
import { uuid } from './ids';
import { Functions, type RestAnswer, restJsonError, TooManyRequests } from './lambda-api';
import { type Credentials, type Protocol, verifySigV4 } from './sigv4';
import type { Sqs } from './sqs';
import { runSqs, sqsError } from './sqs-protocol';
import type { Ssm } from './ssm';
import { type JsonInput, jsonInstanceIds, runJson } from './ssm-protocol';
import type { Throttle } from './throttle';

/** One API call as the control plane saw it. */
export interface CallRecord {
  readonly service: 'autoscaling' | 'ssm' | 'sqs' | 'ec2' | 'lambda';
  readonly operation: string;
  readonly instanceIds: readonly string[];
  /** The error code answered, if any (e.g. `Throttling`, `InvalidInstanceId`). */
  readonly error?: string;
}

/** A call about to be answered, for a fault that denies it as IAM would. */
export type CallRequest = Omit<CallRecord, 'error'>;

export interface ServerModels {
  readonly autoScaling: AutoScaling;
  readonly ssm: Ssm;
  readonly sqs: Sqs;
  readonly ec2: Ec2;
  readonly functions: Functions;
  readonly throttle: Throttle;
  readonly onCall: (call: CallRecord) => void;
  /** True when this call must be refused as an IAM policy would refuse it. */
  readonly denied: (call: CallRequest) => boolean;
  /** The only credentials whose SigV4 signatures are accepted. */
  readonly credentials: Credentials;
  /** The region signatures must be scoped to. */
  readonly region: string;
  readonly account: string;
}

const SSM_TARGET_PREFIX = 'AmazonSSM.';
/** The protocol each service speaks, which decides its authentication errors. */
const PROTOCOLS = {
  autoscaling: 'query',
  ssm: 'json',
  sqs: 'json',
  ec2: 'ec2',
  lambda: 'rest-json',
} as const satisfies Record<CallRecord['service'], Protocol>;
const SQS_TARGET_PREFIX = 'AmazonSQS.';

/**
 * Serves the five wire protocols on one loopback port: a request with
 * `X-Amz-Target: AmazonSSM.<op>` is SSM (awsJson1_1), `X-Amz-Target: AmazonSQS.<op>` is SQS
 * (awsJson1_0), `POST /2015-03-31/functions/<name>/invocations` is Lambda's Invoke (REST-JSON),
 * a form POST with `Action=` is EC2 (its query protocol, `Version=2016-11-15`) or else Auto
 * Scaling (awsQuery). Every request must carry a valid SigV4 signature made with
 * `models.credentials`: any local user can reach the port, and commands run on instances.
 */
export async function listen(
  port: number,
  models: ServerModels,
): Promise<{ server: Server; endpoint: string }> {
  const server = createServer((request, response) => {
    void readBody(request)
      .then((body) => handle(request, body, response, models))
      .catch((error: unknown) => {
        response.writeHead(500, { 'content-type': 'text/plain' });
        response.end(`local control plane error: ${(error as Error).message}\n`);
      });
  });
  // Never reachable from outside this machine: the control plane is a stand-in, not a service.
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const { port: bound } = server.address() as AddressInfo;
  return { server, endpoint: `http://127.0.0.1:${bound}` };
}

function handle(request: IncomingMessage, raw: Buffer, response: ServerResponse, models: ServerModels): void {
  const requestId = uuid();
  const body = raw.toString('utf8');
  const target = request.headers['x-amz-target'];
  const verify = (service: CallRecord['service']) => () =>
    verifySigV4(request, raw, {
      credentials: models.credentials,
      region: models.region,
      service,
      protocol: PROTOCOLS[service],
    });
  const invoked = Functions.functionNameOf(request);
  if (invoked !== undefined) {
    void handleLambda(invoked, request, raw, verify('lambda'), requestId, response, models);
    return;
  }
  if (typeof target === 'string' && target.startsWith(SSM_TARGET_PREFIX)) {
    const operation = target.slice(SSM_TARGET_PREFIX.length);
    void handleJson(SSM_SERVICE(models), operation, body, verify('ssm'), requestId, response, models);
    return;
  }
  if (typeof target === 'string' && target.startsWith(SQS_TARGET_PREFIX)) {
    const operation = target.slice(SQS_TARGET_PREFIX.length);
    void handleJson(SQS_SERVICE(models), operation, body, verify('sqs'), requestId, response, models);
    return;
  }
  if (
    request.method === 'POST' &&
    /(^|&)Action=/.test(body) &&
    new URLSearchParams(body).get('Version') === EC2_VERSION
  ) {
    handleEc2(new Ec2Input(body), verify('ec2'), requestId, response, models);
    return;
  }
  if (request.method === 'POST' && /(^|&)Action=/.test(body)) {
    handleAutoScaling(new QueryInput(body), verify('autoscaling'), requestId, response, models);
    return;
  }
  if (new URL(request.url ?? '/', 'http://localhost').pathname !== '/') {
    // Only REST services put the operation in the path; Lambda's Invoke is the one served.
    void handleLambda(undefined, request, raw, verify('lambda'), requestId, response, models);
    return;
  }
  response.writeHead(400, { 'content-type': 'text/plain' });
  response.end(
    'local control plane: expected an Auto Scaling or EC2 (Action=…), SSM (X-Amz-Target: AmazonSSM.…), SQS (X-Amz-Target: AmazonSQS.…) or Lambda Invoke (POST /2015-03-31/functions/…/invocations) request\n',
  );
}

function handleAutoScaling(
  input: QueryInput,
  authenticate: () => void,
  requestId: string,
  response: ServerResponse,
  models: ServerModels,
): void {
  const instanceIds = queryInstanceIds(input, models.autoScaling);
  const headers = { 'content-type': 'text/xml', 'x-amzn-requestid': requestId };
  try {
    authenticate();
    if (models.denied({ service: 'autoscaling', operation: input.action, instanceIds })) {
      throw new ApiError('AccessDenied', accessDenied('autoscaling', input.action), 403);
    }
    if (models.throttle.refuse(input.action)) throw new ApiError('Throttling', 'Rate exceeded');
    const result = runQuery(models.autoScaling, input);
    models.onCall({ service: 'autoscaling', operation: input.action, instanceIds });
    response.writeHead(200, headers);
    response.end(queryResponse(input.action, result, requestId));
  } catch (error) {
    const apiError = asApiError(error);
    models.onCall({ service: 'autoscaling', operation: input.action, instanceIds, error: apiError.code });
    response.writeHead(apiError.status, headers);
    response.end(queryError(apiError, requestId));
  }
}

function handleEc2(
  input: Ec2Input,
  authenticate: () => void,
  requestId: string,
  response: ServerResponse,
  models: ServerModels,
): void {
  const instanceIds = ec2InstanceIds(input);
  const headers = { 'content-type': 'text/xml;charset=UTF-8', 'x-amzn-requestid': requestId };
  try {
    authenticate();
    if (models.denied({ service: 'ec2', operation: input.action, instanceIds })) {
      throw new ApiError('UnauthorizedOperation', 'You are not authorized to perform this operation.', 403);
    }
    if (models.throttle.refuse(input.action)) {
      throw new ApiError('RequestLimitExceeded', 'Request limit exceeded.', 503);
    }
    const result = runEc2(models.ec2, input, models.account);
    models.onCall({ service: 'ec2', operation: input.action, instanceIds });
    response.writeHead(200, headers);
    response.end(ec2Response(input.action, result, requestId));
  } catch (error) {
    const apiError = asApiError(error);
    models.onCall({ service: 'ec2', operation: input.action, instanceIds, error: apiError.code });
    response.writeHead(apiError.status, headers);
    response.end(ec2Error(apiError, requestId));
  }
}

/** Lambda's Invoke: the function named in the path, answered in REST-JSON; any other path is an operation not served. */
async function handleLambda(
  invoked: { name: string; qualifier?: string } | undefined,
  request: IncomingMessage,
  raw: Buffer,
  authenticate: () => void,
  requestId: string,
  response: ServerResponse,
  models: ServerModels,
): Promise<void> {
  const operation = invoked ? 'Invoke' : `${request.method ?? 'GET'} ${request.url ?? '/'}`;
  let answer: RestAnswer;
  try {
    authenticate();
    if (!invoked) throw new ApiError('UnknownOperationException', '', 404);
    if (models.denied({ service: 'lambda', operation, instanceIds: [] })) {
      throw new ApiError('AccessDeniedException', accessDenied('lambda', 'InvokeFunction'), 403);
    }
    if (models.throttle.refuse(operation)) {
      throw new TooManyRequests('CallerRateLimitExceeded', 'Rate exceeded');
    }
    answer = await models.functions.invoke(invoked, request.headers, raw);
    models.onCall({ service: 'lambda', operation, instanceIds: [] });
  } catch (error) {
    const apiError = asApiError(error);
    models.onCall({ service: 'lambda', operation, instanceIds: [], error: apiError.code });
    answer = restJsonError(apiError, requestId);
  }
  response.writeHead(answer.status, {
    'content-type': 'application/json',
    'x-amzn-requestid': requestId,
    ...answer.headers,
  });
  response.end(answer.body);
}

/** What differs between the JSON-protocol services: their content type, errors and operations. */
interface JsonService {
  readonly service: 'ssm' | 'sqs';
  readonly contentType: string;
  /** The instances a request names, for the call records and injected denials. */
  readonly instanceIds: (input: JsonInput) => string[];
  readonly denied: (operation: string) => ApiError;
  readonly throttled: () => ApiError;
  readonly run: (operation: string, input: JsonInput) => unknown;
  readonly answerError: (error: ApiError) => { headers?: Record<string, string>; body: string };
}

/** SSM: awsJson1_1. */
const SSM_SERVICE = (models: ServerModels): JsonService => ({
  service: 'ssm',
  contentType: 'application/x-amz-json-1.1',
  instanceIds: (input) => jsonInstanceIds(input, models.ssm),
  denied: (operation) => new ApiError('AccessDeniedException', accessDenied('ssm', operation)),
  throttled: () => new ApiError('ThrottlingException', 'Rate exceeded'),
  run: (operation, input) => runJson(models.ssm, operation, input),
  answerError: (error) => ({
    body: JSON.stringify({ __type: error.code, ...(error.message ? { message: error.message } : {}) }),
  }),
});

/** SQS: awsJson1_0, its errors with the `x-amzn-query-error` header SQS adds. ReceiveMessage may long-poll. */
const SQS_SERVICE = (models: ServerModels): JsonService => ({
  service: 'sqs',
  contentType: 'application/x-amz-json-1.0',
  instanceIds: () => [],
  denied: (operation) => new ApiError('AccessDenied', accessDenied('sqs', operation), 403),
  throttled: () => new ApiError('RequestThrottled', 'Rate exceeded', 403),
  run: (operation, input) => runSqs(models.sqs, operation, input),
  answerError: sqsError,
});

async function handleJson(
  spec: JsonService,
  operation: string,
  body: string,
  authenticate: () => void,
  requestId: string,
  response: ServerResponse,
  models: ServerModels,
): Promise<void> {
  const headers = { 'content-type': spec.contentType, 'x-amzn-requestid': requestId };
  const { service } = spec;
  let instanceIds: string[] = [];
  try {
    authenticate();
    const input = parseJson(body);
    instanceIds = spec.instanceIds(input);
    if (models.denied({ service, operation, instanceIds })) throw spec.denied(operation);
    if (models.throttle.refuse(operation)) throw spec.throttled();
    const result = await spec.run(operation, input);
    models.onCall({ service, operation, instanceIds });
    response.writeHead(200, headers);
    response.end(JSON.stringify(result));
  } catch (error) {
    const apiError = asApiError(error);
    models.onCall({ service, operation, instanceIds, error: apiError.code });
    const answer = spec.answerError(apiError);
    response.writeHead(apiError.status, { ...headers, ...answer.headers });
    response.end(answer.body);
  }
}

function accessDenied(service: string, operation: string): string {
  return `User: arn:aws:sts::123456789012:assumed-role/selfdeploy-orchestrator/local is not authorized to perform: ${service}:${operation} because no identity-based policy allows the ${service}:${operation} action`;
}

function parseJson(body: string): JsonInput {
  try {
    const parsed: unknown = JSON.parse(body === '' ? '{}' : body);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return parsed as JsonInput;
  } catch {
    // Answered below as AWS answers a malformed body.
  }
  throw new ApiError('SerializationException', 'The request body is not a JSON object');
}

/** A bug in the control plane answers 500 InternalFailure, as a service fault would. */
function asApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  return new ApiError('InternalFailure', `local control plane bug: ${(error as Error).message}`, 500);
}

function readBody(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}
