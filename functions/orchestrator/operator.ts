import type { OperatorAction, OperatorAnswer } from '../shared/operator-actions';
import { deploy, logs, rollback } from './deployments';
import type { Deps } from './deps';
import { pause, release, resume, status } from './group-actions';

/** Runs one operator action (console test event, `aws lambda invoke`, the CLI). */
export function operate(deps: Deps, action: OperatorAction): Promise<OperatorAnswer> {
  switch (action.action) {
    case 'status':
      return status(deps, action);
    case 'release':
      return release(deps, action);
    case 'pause':
      return pause(deps, action);
    case 'resume':
      return resume(deps, action);
    case 'deploy':
      return deploy(deps, action);
    case 'rollback':
      return rollback(deps, action);
    case 'logs':
      return logs(deps, action);
  }
}
