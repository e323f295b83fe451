/**
 * One operator action, sent to the orchestrator function with Lambda Invoke, and its answer.
 * The orchestrator is the only place that decides; this module only carries the action there.
 */
import { InvokeCommand, type InvokeCommandOutput, LambdaClient } from '@aws-sdk/client-lambda';
import type { OperatorAction, OperatorAnswer } from '../../functions/shared/operator-actions';

/** The orchestrator ran and refused or failed the action (its `errorType: errorMessage`). */
export class ActionFailedError extends Error {
  public override name = 'ActionFailedError';
}

/** The function could not be invoked, or answered something that is not an operator answer. */
export class UnreachableError extends Error {
  public override name = 'UnreachableError';
}

/** What invokes the orchestrator: one per CLI run. */
export type Invoke = <A extends OperatorAction>(action: A) => Promise<AnswerTo<A['action']>>;

/** The answer the orchestrator gives to an action named `Name`. */
type AnswerTo<Name extends OperatorAction['action']> = Extract<OperatorAnswer, { action: Name }>;

/** Where and as whom to invoke. */
interface Target {
  readonly functionName: string;
  readonly region?: string;
  readonly profile?: string;
}

/**
 * A client on the SDK's standard credential chain and endpoint settings (AWS_ENDPOINT_URL_LAMBDA
 * reaches the local control plane), and the function that invokes through it.
 */
export function lambdaInvoker(target: Target): Invoke {
  const client = new LambdaClient({
    ...(target.region === undefined ? {} : { region: target.region }),
    ...(target.profile === undefined ? {} : { profile: target.profile }),
  });
  return async (action) => {
    let response: InvokeCommandOutput;
    try {
      response = await client.send(
        new InvokeCommand({
          FunctionName: target.functionName,
          InvocationType: 'RequestResponse',
          Payload: new TextEncoder().encode(JSON.stringify(action)),
        }),
      );
    } catch (error) {
      const { name, message } = error instanceof Error ? error : new Error(String(error));
      throw new UnreachableError(`cannot invoke ${target.functionName}: ${name}: ${message}`, {
        cause: error,
      });
    }
    const body = decode(response.Payload);
    if (response.FunctionError !== undefined) throw new ActionFailedError(describeFunctionError(body));
    return answerTo(action, body);
  };
}

function decode(payload: Uint8Array | undefined): unknown {
  const text = payload === undefined ? '' : new TextDecoder().decode(payload);
  try {
    return text === '' ? undefined : JSON.parse(text);
  } catch {
    return text;
  }
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Lambda's error body `{errorType, errorMessage, trace}` as `errorType: errorMessage`. */
function describeFunctionError(body: unknown): string {
  if (isRecord(body) && typeof body.errorMessage === 'string') {
    return `${typeof body.errorType === 'string' ? body.errorType : 'Error'}: ${body.errorMessage}`;
  }
  return `Error: ${JSON.stringify(body) ?? 'the function failed without a message'}`;
}

/** The orchestrator's answer to `action`, out of its route result `{kind: 'operator', result}`. */
function answerTo<A extends OperatorAction>(action: A, body: unknown): AnswerTo<A['action']> {
  const result = isRecord(body) && body.kind === 'operator' ? body.result : undefined;
  if (!isAnswerTo<A['action']>(action.action, result)) {
    throw new UnreachableError(
      `the function did not answer as a selfdeploy orchestrator to ${action.action}: ${JSON.stringify(body)?.slice(0, 200)}`,
    );
  }
  return result;
}

function isAnswerTo<Name extends OperatorAction['action']>(
  name: Name,
  value: unknown,
): value is AnswerTo<Name> {
  return isRecord(value) && value.action === name && typeof value.group === 'string';
}
