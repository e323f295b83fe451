import type { OperatorAction, OperatorAnswer } from '../shared/operator-actions';
import type { Deps } from './deps';

type Action<Name extends OperatorAction['action']> = Extract<OperatorAction, { action: Name }>;

// Scaffolding: each action is built in its own change.
const notYet = (name: string) => Promise.reject(new Error(`${name} is not built yet`));

export function deploy(_deps: Deps, _action: Action<'deploy'>): Promise<OperatorAnswer> {
  return notYet('deploy');
}
export function rollback(_deps: Deps, _action: Action<'rollback'>): Promise<OperatorAnswer> {
  return notYet('rollback');
}
export function logs(_deps: Deps, _action: Action<'logs'>): Promise<OperatorAnswer> {
  return notYet('logs');
}
