import { createHash } from 'node:crypto';
import { SELF_DEPLOY_EXIT_CODES } from '../../functions/shared/exit-codes';
import { SHA_PATTERN } from '../../functions/shared/operator-actions';
import { RESULT_LINE_PREFIX } from '../../functions/shared/result-line';
import { type Agent, type Execution, type ExecutionResult, RUN_SHELL_SCRIPT } from './control-plane/ssm';
import { STOPPED_EXIT_CODE } from './run-document';

export interface StandInAgentOptions {
  /** Real milliseconds each "deploy" takes. @default 50 */
  readonly durationMs?: number;
  /** True when this run must fail (exit code deployCommand, as a failed deploy command exits). @default never */
  readonly fails?: (execution: Execution) => boolean;
}

/**
 * A fast stand-in for the real deploy: waits `durationMs` and exits 0, or as a failed deploy
 * command where `fails` says so. It honours the command's execution timeout and the instance's termination, and
 * costs only a timer per run, so thousands of instances can "deploy" at once.
 */
export function standInAgent(options: StandInAgentOptions = {}): Agent {
  const durationMs = options.durationMs ?? 50;
  return (execution) => {
    // No operating system behind a stand-in: shell commands fail rather than run on this machine.
    if (execution.documentName === RUN_SHELL_SCRIPT) {
      return Promise.resolve({
        exitCode: 1,
        stdout: '',
        stderr: `${execution.instanceId} is a stand-in instance with no operating system: ${RUN_SHELL_SCRIPT} runs only on instances of a real-deploy run\n`,
        timedOut: false,
      });
    }
    return new Promise<ExecutionResult>((resolve) => {
      const timeoutMs = Number(execution.parameters.executionTimeout ?? '3600') * 1000;
      const finish = (result: ExecutionResult) => {
        clearTimeout(timer);
        execution.signal.removeEventListener('abort', onAbort);
        resolve(result);
      };
      // Stopped as the agent stops a script (termination, CancelCommand).
      const onAbort = () =>
        finish({ exitCode: STOPPED_EXIT_CODE, stdout: '', stderr: 'terminated\n', timedOut: false });
      const timer = setTimeout(
        () => {
          if (durationMs > timeoutMs) {
            finish({
              exitCode: STOPPED_EXIT_CODE,
              stdout: '',
              stderr: 'execution timed out\n',
              timedOut: true,
            });
          } else if (options.fails?.(execution)) {
            finish({
              exitCode: SELF_DEPLOY_EXIT_CODES.deployCommand,
              stdout: `deploying\n${resultLine(execution, 'failure', SELF_DEPLOY_EXIT_CODES.deployCommand)}`,
              stderr: 'stand-in deploy failed (injected)\n',
              timedOut: false,
            });
          } else {
            finish({
              exitCode: 0,
              stdout: `deployed ${execution.parameters.revision || 'branch head'}\n${resultLine(execution, 'success', 0)}`,
              stderr: '',
              timedOut: false,
            });
          }
        },
        Math.min(durationMs, timeoutMs),
      );
      execution.signal.addEventListener('abort', onAbort);
    });
  };
}

/**
 * The result line the real script ends with, for what the stand-in "deployed": the revision
 * when it is a SHA, else a SHA standing for the name (the branch head when empty), the same
 * for every run, as one commit is for every instance.
 */
function resultLine(execution: Execution, status: 'success' | 'failure', exitCode: number): string {
  const requested = execution.parameters.revision ?? '';
  const revision = SHA_PATTERN.test(requested)
    ? requested
    : createHash('sha1')
        .update(requested || 'branch head')
        .digest('hex');
  return `${RESULT_LINE_PREFIX}${JSON.stringify({ status, exitCode, revision })}\n`;
}
