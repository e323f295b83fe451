import type { IncomingMessage } from 'node:http';
import { ApiError } from './api-error';
import type { Clock } from './clock';

/** How one synchronous invocation ended, or the concurrency limit that refused it. */
export type InvokeOutcome =
  | {
      readonly throttled:
        | 'ReservedFunctionConcurrentInvocationLimitExceeded'
        | 'ConcurrentInvocationLimitExceeded';
    }
  | {
      readonly requestId: string;
      readonly result?: unknown;
      readonly error?: {
        readonly name: string;
        readonly message: string;
        readonly trace?: readonly string[];
      };
      /** What the invocation logged. */
      readonly log: string;
    };

/** A function the control plane can invoke (LocalLambda). */
export interface LocalFunction {
  invokeWithLog(event: unknown): Promise<InvokeOutcome>;
  /** As an asynchronous invoke: a throttled event is retried by Lambda's queue. */
  invokeAsync(event: unknown): Promise<unknown>;
}

/** Lambda's payload quotas: 6 MB for a synchronous invoke, 1 MB for an asynchronous one. */
const PAYLOAD_LIMITS = { RequestResponse: 6_291_456, Event: 1_048_576 } as const;
/** How much of an invocation's log `LogType: Tail` answers with. */
const LOG_TAIL_BYTES = 4096;
const INVOCATION_TYPES = ['RequestResponse', 'Event', 'DryRun'] as const;
type InvocationType = (typeof INVOCATION_TYPES)[number];

/** Lambda's throttling answer, with the limit that was reached (its `Reason`). */
export class TooManyRequests extends ApiError {
  public constructor(
    public readonly reason: string,
    message: string,
  ) {
    super('TooManyRequestsException', message, 429);
  }
}

/** An HTTP answer of the REST-JSON protocol. */
export interface RestAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/**
 * The Lambda functions of the account and the Invoke API for them
 * (`POST /2015-03-31/functions/{FunctionName}/invocations`): by name, ARN or partial ARN, with
 * the invocation types, the log tail, function errors and Lambda's errors.
 */
export class Functions {
  readonly #functions = new Map<string, LocalFunction>();

  public constructor(
    private readonly region: string,
    private readonly account: string,
    private readonly clock: Clock,
    /** Simulated seconds before each retry of a failed asynchronous invocation (Lambda: two retries). */
    private readonly retryDelaysSeconds: readonly number[],
  ) {}

  /** Makes `fn` invokable as `name`; returns what removes it. */
  public register(name: string, fn: LocalFunction): () => void {
    this.#functions.set(name, fn);
    return () => {
      if (this.#functions.get(name) === fn) this.#functions.delete(name);
    };
  }

  public arn(name: string): string {
    return `arn:aws:lambda:${this.region}:${this.account}:function:${name}`;
  }

  /** The function the path names, if the path is Invoke's; undefined for any other path. */
  public static functionNameOf(request: IncomingMessage): { name: string; qualifier?: string } | undefined {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const match = /^\/2015-03-31\/functions\/([^/]+)\/invocations$/.exec(url.pathname);
    if (!match) return undefined;
    const qualifier = url.searchParams.get('Qualifier');
    return { name: decodeURIComponent(match[1] ?? ''), ...(qualifier === null ? {} : { qualifier }) };
  }

  /** Answers one Invoke request. */
  public async invoke(
    named: { name: string; qualifier?: string },
    headers: IncomingMessage['headers'],
    body: Buffer,
  ): Promise<RestAnswer> {
    const fn = this.#resolve(named);
    const type = header(headers, 'x-amz-invocation-type') ?? 'RequestResponse';
    if (!INVOCATION_TYPES.includes(type as InvocationType)) {
      throw new ApiError(
        'ValidationException',
        `1 validation error detected: Value '${type}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]`,
      );
    }
    const limit = type === 'Event' ? PAYLOAD_LIMITS.Event : PAYLOAD_LIMITS.RequestResponse;
    if (body.length > limit) {
      throw new ApiError(
        'RequestEntityTooLargeException',
        type === 'Event'
          ? `${body.length} byte payload is too large for the Event invocation type (limit ${limit} bytes)`
          : `Request must be smaller than ${limit} bytes for the InvokeFunction operation`,
        413,
      );
    }
    const event = parsePayload(body);
    if (type === 'DryRun') return { status: 204, headers: {}, body: '' };
    if (type === 'Event') {
      void this.#invokeLater(fn, event);
      return { status: 202, headers: {}, body: '' };
    }
    const outcome = await fn.invokeWithLog(event);
    if ('throttled' in outcome) throw new TooManyRequests(outcome.throttled, 'Rate Exceeded.');
    const answerHeaders: Record<string, string> = {
      'x-amz-executed-version': '$LATEST',
      'x-amzn-requestid': outcome.requestId,
    };
    if (header(headers, 'x-amz-log-type') === 'Tail') {
      answerHeaders['x-amz-log-result'] = Buffer.from(outcome.log)
        .subarray(-LOG_TAIL_BYTES)
        .toString('base64');
    }
    if (outcome.error) {
      answerHeaders['x-amz-function-error'] = 'Unhandled';
      return {
        status: 200,
        headers: answerHeaders,
        body: JSON.stringify({
          errorType: outcome.error.name,
          errorMessage: outcome.error.message,
          ...(outcome.error.trace ? { trace: outcome.error.trace } : {}),
        }),
      };
    }
    // A handler that returns nothing answers `null`, as Lambda's Node.js runtime does.
    return { status: 200, headers: answerHeaders, body: JSON.stringify(outcome.result ?? null) };
  }

  /** The function a name, `name:qualifier`, partial ARN or ARN names; only $LATEST exists here. */
  #resolve(named: { name: string; qualifier?: string }): LocalFunction {
    const match =
      /^(?:arn:aws[a-zA-Z-]*:lambda:([a-z0-9-]+):)?(?:(\d{12}):)?(?:function:)?([a-zA-Z0-9_-]+)(?::(\$LATEST|[a-zA-Z0-9_-]+))?$/.exec(
        named.name,
      );
    const [, region, account, name = named.name, inName] = match ?? [];
    const qualifier = named.qualifier ?? inName;
    const fn = this.#functions.get(name);
    const sameAccount = (region ?? this.region) === this.region && (account ?? this.account) === this.account;
    if (!match || !fn || !sameAccount || (qualifier !== undefined && qualifier !== '$LATEST')) {
      const arn = `arn:aws:lambda:${region ?? this.region}:${account ?? this.account}:function:${name}`;
      throw new ApiError(
        'ResourceNotFoundException',
        `Function not found: ${qualifier === undefined ? arn : `${arn}:${qualifier}`}`,
        404,
      );
    }
    return fn;
  }

  /** An asynchronous invocation: queued, run, and on a function error retried twice, as Lambda does. */
  async #invokeLater(fn: LocalFunction, event: unknown): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await fn.invokeAsync(event);
        return;
      } catch {
        const delay = this.retryDelaysSeconds[attempt];
        if (delay === undefined) return;
        await this.clock.sleep(delay);
      }
    }
  }
}

/** The REST-JSON error answer: the code in `x-amzn-ErrorType`, Lambda's `{Type, message}` body. */
export function restJsonError(error: ApiError, requestId: string): RestAnswer {
  return {
    status: error.status,
    headers: { 'x-amzn-errortype': error.code, 'x-amzn-requestid': requestId },
    body: JSON.stringify({
      Type: error.status >= 500 ? 'Service' : 'User',
      message: error.message,
      ...(error instanceof TooManyRequests ? { Reason: error.reason } : {}),
    }),
  };
}

function header(headers: IncomingMessage['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The event: the payload's JSON (an empty payload is `{}`, as Lambda passes it). */
function parsePayload(body: Buffer): unknown {
  if (body.length === 0) return {};
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new ApiError(
      'InvalidRequestContentException',
      `Could not parse request body into json: Could not parse payload into json: ${(error as Error).message}`,
    );
  }
}
