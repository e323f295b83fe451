import type { OperatorAnswer } from '../shared/operator-actions';
import type { CompletionOutcome } from './completion';
import { handleCommandStatus } from './completion';
import type { Deps } from './deps';
import { classify } from './events';
import { handleLaunch, type LaunchOutcome } from './launch';
import { operate } from './operator';
import { type ReconcileSummary, reconcile } from './reconcile';
import { type RedeploySummary, redeploy } from './redeploy';

export type RouteResult =
  | { kind: 'lifecycle'; instanceId: string; result: LaunchOutcome }
  | { kind: 'test-notification'; ignored: true }
  | { kind: 'command-status'; commandId: string; result: CompletionOutcome }
  | { kind: 'reconcile'; result: ReconcileSummary }
  | { kind: 'redeploy'; result: RedeploySummary }
  | { kind: 'operator'; result: OperatorAnswer };

/** Classifies any input (throws InvalidInputError before any AWS call) and runs its step. */
export async function route(deps: Deps, input: unknown): Promise<RouteResult> {
  const request = classify(input);
  switch (request.kind) {
    case 'lifecycle':
      return {
        kind: 'lifecycle',
        instanceId: request.event.detail.EC2InstanceId,
        result: await handleLaunch(deps, request.event),
      };
    case 'test-notification':
      deps.logger.info('ignored: Auto Scaling test notification', { group: request.group });
      return { kind: 'test-notification', ignored: true };
    case 'command-status':
    case 'invocation-status':
      return {
        kind: 'command-status',
        commandId: request.event.detail['command-id'],
        result: await handleCommandStatus(deps, request.event),
      };
    case 'reconcile':
      return { kind: 'reconcile', result: await reconcile(deps) };
    case 'redeploy':
      return { kind: 'redeploy', result: await redeploy(deps, request.action) };
    case 'operator':
      return { kind: 'operator', result: await operate(deps, request.action) };
  }
}
