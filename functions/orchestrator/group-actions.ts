import type { GroupStatus, OperatorAction, OperatorAnswer } from '../shared/operator-actions';
import type { Deps } from './deps';

type Action<Name extends OperatorAction['action']> = Extract<OperatorAction, { action: Name }>;

// Scaffolding: each action is built in its own change.
const notYet = (name: string) => Promise.reject(new Error(`${name} is not built yet`));

export function status(_deps: Deps, _action: Action<'status'>): Promise<GroupStatus> {
  return notYet('status');
}
export function release(_deps: Deps, _action: Action<'release'>): Promise<OperatorAnswer> {
  return notYet('release');
}
export function pause(_deps: Deps, _action: Action<'pause'>): Promise<OperatorAnswer> {
  return notYet('pause');
}
export function resume(_deps: Deps, _action: Action<'resume'>): Promise<OperatorAnswer> {
  return notYet('resume');
}
