/**
 * The baseline for section 3: the orchestrator most samples show. On a launch lifecycle
 * event it sends the command, waits in the function with the SDK's waitUntilCommandExecuted
 * until the deploy has finished, then completes the lifecycle action. It runs as a Lambda
 * handler in LocalLambda, like selfdeploy's.
 *
 * The control plane runs `timeScale` times faster than real time, so the waiter's delays
 * (5 s to 120 s) are divided by it: it polls as often per simulated deploy as it would on
 * AWS. Each invocation returns the real milliseconds it spent between calls (sleeping in the
 * waiter), which the benchmark multiplies back into simulated time for the Lambda bill.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { AutoScalingClient, CompleteLifecycleActionCommand } from '@aws-sdk/client-auto-scaling';
import { SendCommandCommand, SSMClient, waitUntilCommandExecuted } from '@aws-sdk/client-ssm';
import type { Context } from 'aws-lambda';
import type { LifecycleResult } from '../../functions/shared/lifecycle-result';

interface BaselineConfig {
  readonly documentName: string;
  readonly timeScale: number;
  readonly parameters: Readonly<Record<string, string[]>>;
}

interface LaunchEvent {
  readonly detail: {
    readonly EC2InstanceId: string;
    readonly AutoScalingGroupName: string;
    readonly LifecycleHookName: string;
    readonly LifecycleActionToken: string;
  };
}

/** What one invocation reports: real milliseconds in API calls and in all. */
export interface BaselineResult {
  readonly result: LifecycleResult;
  readonly apiMs: number;
  readonly totalMs: number;
}

/** The SDK waiter's delays for SSM CommandExecuted, in seconds on AWS. */
const WAITER_MIN_DELAY = 5;
const WAITER_MAX_DELAY = 120;
/** Real seconds kept back from the function's timeout to complete the action. */
const MARGIN_SECONDS = 1;

const config = JSON.parse(process.env.BASELINE_CONFIG ?? '{}') as BaselineConfig;
const ssm = new SSMClient({});
const autoScaling = new AutoScalingClient({});
// Invocations run concurrently in one process: each counts its own API time.
const apiTime = new AsyncLocalStorage<{ ms: number }>();
for (const client of [ssm, autoScaling]) {
  client.middlewareStack.add(
    (next) => async (args) => {
      const started = performance.now();
      try {
        return await next(args);
      } finally {
        const counter = apiTime.getStore();
        if (counter) counter.ms += performance.now() - started;
      }
    },
    { step: 'initialize', name: 'benchApiTime' },
  );
}

export const handler = (event: LaunchEvent, context: Context): Promise<BaselineResult> =>
  apiTime.run({ ms: 0 }, async () => {
    const started = performance.now();
    const { detail } = event;
    const sent = await ssm.send(
      new SendCommandCommand({
        DocumentName: config.documentName,
        InstanceIds: [detail.EC2InstanceId],
        Parameters: config.parameters,
      }),
    );
    const commandId = sent.Command?.CommandId ?? '';
    let result: BaselineResult['result'] = 'CONTINUE';
    try {
      await waitUntilCommandExecuted(
        {
          client: ssm,
          minDelay: WAITER_MIN_DELAY / config.timeScale,
          maxDelay: WAITER_MAX_DELAY / config.timeScale,
          maxWaitTime: context.getRemainingTimeInMillis() / 1000 - MARGIN_SECONDS,
        },
        { CommandId: commandId, InstanceId: detail.EC2InstanceId },
      );
    } catch {
      result = 'ABANDON';
    }
    await autoScaling.send(
      new CompleteLifecycleActionCommand({
        AutoScalingGroupName: detail.AutoScalingGroupName,
        LifecycleHookName: detail.LifecycleHookName,
        LifecycleActionToken: detail.LifecycleActionToken,
        LifecycleActionResult: result,
      }),
    );
    return { result, apiMs: apiTime.getStore()?.ms ?? 0, totalMs: performance.now() - started };
  });
