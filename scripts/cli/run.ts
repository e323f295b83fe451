/**
 * One run of the `selfdeploy` CLI: parse, invoke the orchestrator, print its answer, follow a
 * deployment it started; the exit code says how it went (exit-codes.ts).
 */
import { parseCommandLine, type Request, UsageError } from './commands';
import { CLI_EXIT_CODES, type CliExitCode } from './exit-codes';
import { follow } from './follow';
import { ActionFailedError, type Invoke, lambdaInvoker, UnreachableError } from './invoke';
import { renderAnswer, renderStatus, resultTable } from './render';

/** What a run reads and writes; tests pass their own. */
export interface Io {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  readonly env: NodeJS.ProcessEnv;
  readonly sleep: (ms: number) => Promise<void>;
  readonly now: () => number;
}

/** Runs `argv` (the arguments after the program name) and answers the exit code. */
export async function run(argv: readonly string[], io: Io): Promise<CliExitCode> {
  let request: Request;
  try {
    const parsed = parseCommandLine(argv, io.env);
    if (parsed.kind === 'help') {
      io.out(parsed.text);
      return CLI_EXIT_CODES.success.code;
    }
    request = parsed.request;
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.err(`selfdeploy: ${error.message}`);
    return CLI_EXIT_CODES.usage.code;
  }
  try {
    return await perform(lambdaInvoker(request), request, io);
  } catch (error) {
    return reportError(error, io);
  }
}

/** Prints an invocation's failure as one line and answers its exit code; rethrows anything else (a bug). */
function reportError(error: unknown, io: Io): CliExitCode {
  if (error instanceof ActionFailedError) {
    io.err(error.message);
    return CLI_EXIT_CODES.failure.code;
  }
  if (error instanceof UnreachableError) {
    io.err(`selfdeploy: ${error.message}`);
    return CLI_EXIT_CODES.unreachable.code;
  }
  throw error;
}

async function perform(invoke: Invoke, request: Request, io: Io): Promise<CliExitCode> {
  const { action } = request;
  const print = (lines: readonly string[]) => {
    for (const line of lines) io.out(line);
  };
  const json = (value: unknown) => io.out(JSON.stringify(value));
  if (action.action !== 'deploy' && action.action !== 'rollback') {
    const answer = await invoke(action);
    if (request.json) json(answer);
    else print(answer.action === 'status' ? renderStatus(answer) : renderAnswer(answer));
    return CLI_EXIT_CODES.success.code;
  }
  const started = await invoke(action);
  if (request.json) json(started);
  else print(renderAnswer(started));
  if (request.followIntervalMs === undefined) return CLI_EXIT_CODES.success.code;

  if (!request.json) {
    io.out(`following ${started.deploymentId} (Ctrl-C stops following; the deployment goes on)`);
  }
  let followed: Awaited<ReturnType<typeof follow>>;
  try {
    followed = await follow(invoke, {
      group: action.group,
      deploymentId: started.deploymentId,
      intervalMs: request.followIntervalMs,
      sleep: io.sleep,
      now: io.now,
      ...(request.json ? {} : { progress: (line: string) => io.out(line) }),
    });
  } catch (error) {
    const code = reportError(error, io);
    io.err(
      `stopped following ${started.deploymentId}; it goes on: npx selfdeploy status --group ${action.group}`,
    );
    return code;
  }
  const { status, deployment } = followed;
  if (request.json) json(status);
  if (deployment === undefined) {
    io.err(
      `${started.deploymentId} is neither in flight nor ${action.group}'s last deployment: npx selfdeploy status --group ${action.group}`,
    );
    return CLI_EXIT_CODES.failure.code;
  }
  if (!request.json) print(resultTable(deployment, status.instances));
  return deployment.phase === 'promoted' ? CLI_EXIT_CODES.success.code : CLI_EXIT_CODES.failure.code;
}
