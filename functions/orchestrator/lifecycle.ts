import {
  CompleteLifecycleActionCommand,
  RecordLifecycleActionHeartbeatCommand,
} from '@aws-sdk/client-auto-scaling';
import type { LifecycleResult } from '../shared/lifecycle-result';
import { MetricName } from '../shared/metric-names';
import type { Deps } from './deps';

/** Names one lifecycle action: by its token when known, else by instance. */
export interface LifecycleAction {
  readonly group: string;
  readonly hook: string;
  readonly token?: string;
  readonly instanceId?: string;
}

/** Auto Scaling's answer when the action already ended (timed out, completed, or a wrong token). */
function isNoActiveAction(error: unknown): boolean {
  return (
    error instanceof Error &&
    error.name === 'ValidationError' &&
    error.message.startsWith('No active Lifecycle Action found')
  );
}

function target(action: LifecycleAction) {
  return {
    AutoScalingGroupName: action.group,
    LifecycleHookName: action.hook,
    ...(action.token ? { LifecycleActionToken: action.token } : { InstanceId: action.instanceId }),
  };
}

/**
 * Completes the action. 'expired' when it had already ended: that is logged and counted,
 * never an error, because duplicates, hook timeouts and manual completions all end there.
 */
export async function completeAction(
  deps: Deps,
  action: LifecycleAction,
  result: LifecycleResult,
  logKeys: Record<string, unknown>,
): Promise<'completed' | 'expired'> {
  try {
    await deps.clients.autoScaling.send(
      new CompleteLifecycleActionCommand({ ...target(action), LifecycleActionResult: result }),
    );
    deps.logger.info(`lifecycle action completed with ${result}`, { ...logKeys, result });
    return 'completed';
  } catch (error) {
    if (!isNoActiveAction(error)) throw error;
    deps.metrics.record(MetricName.LifecycleActionExpired, action.group);
    deps.logger.info('lifecycle action had already ended; nothing to complete', {
      ...logKeys,
      result,
      reason: (error as Error).message,
    });
    return 'expired';
  }
}

/** Extends the hook's timeout. 'expired' when the action has already ended. */
export async function heartbeat(deps: Deps, action: LifecycleAction): Promise<'recorded' | 'expired'> {
  try {
    await deps.clients.autoScaling.send(new RecordLifecycleActionHeartbeatCommand(target(action)));
    return 'recorded';
  } catch (error) {
    if (!isNoActiveAction(error)) throw error;
    return 'expired';
  }
}
