import * as z from 'zod/mini';
import type { LifecycleResult } from '../shared/lifecycle-result';
import { describeIssues, documentParameter } from '../shared/validation';
import type { GroupConfig, WarmPoolPolicy } from './config';

/** Where a launching instance is headed: into service, or into the warm pool. */
export type Place = 'AutoScalingGroup' | 'WarmPool';

/** Lifecycle states of an instance held by a launch hook, and where each is headed. */
const WAIT_STATES: ReadonlyMap<string, Place> = new Map([
  ['Pending:Wait', 'AutoScalingGroup'],
  ['Warmed:Pending:Wait', 'WarmPool'],
]);

/** Where an instance in `state` is headed, when a launch hook holds it; else undefined. */
export function placeOfWait(state: string | undefined): Place | undefined {
  return WAIT_STATES.get(state ?? '');
}

/**
 * Whether a launch at `destination` gets a deploy or is let through at once, per the group's
 * warm-pool policy. An instance let through into service without a deploy here was deployed
 * when it entered the warm pool (policy deploy-on-warm-pool).
 */
export function warmPoolDecision(
  policy: WarmPoolPolicy,
  origin: string | undefined,
  destination: Place,
): 'deploy' | 'continue' {
  if (destination === 'WarmPool') return policy === 'deploy-on-service' ? 'continue' : 'deploy';
  if (origin === 'WarmPool' && policy === 'deploy-on-warm-pool') return 'continue';
  return 'deploy';
}

/** The lifecycle result for a command's terminal status. */
export function resultFor(
  status: string,
  group: Pick<GroupConfig, 'onFailure'> | undefined,
): LifecycleResult {
  return status === 'Success' ? 'CONTINUE' : (group?.onFailure ?? 'ABANDON');
}

/** Per-launch overrides a launch's NotificationMetadata may give. */
export const overridesSchema = z.strictObject({
  environment: z.optional(documentParameter('environment')),
  revision: z.optional(documentParameter('revision')),
});
export type Overrides = z.output<typeof overridesSchema>;

/** What a launch's NotificationMetadata says. */
export type Metadata =
  | { kind: 'none' }
  | { kind: 'note'; text: string }
  | { kind: 'overrides'; overrides: Overrides }
  | { kind: 'invalid'; reason: string };

/**
 * NotificationMetadata is untrusted: a JSON object is a set of per-launch overrides and is
 * validated like any document parameter; anything else is a free-text note for the logs.
 */
export function readMetadata(metadata: string | undefined): Metadata {
  if (metadata === undefined || metadata.trim() === '') return { kind: 'none' };
  let json: unknown;
  try {
    json = JSON.parse(metadata);
  } catch {
    return { kind: 'note', text: metadata };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    return { kind: 'note', text: metadata };
  const parsed = overridesSchema.safeParse(json);
  return parsed.success
    ? { kind: 'overrides', overrides: parsed.data }
    : { kind: 'invalid', reason: `NotificationMetadata overrides rejected: ${describeIssues(parsed.error)}` };
}

/**
 * The command's Comment records why it was sent and for which place, so the reconciler can
 * tell a warm-pool deploy from the deploy for entering service without any state of its own.
 */
export function commandComment(reason: 'launch' | 'reconcile' | 'redeploy', place?: Place): string {
  return place ? `selfdeploy ${reason} ${place}` : `selfdeploy ${reason}`;
}

/** What a deployment's command does: a phase of the deployment, or restoring its failed instances. */
export type DeploymentCommandRole = 'canary' | 'rest' | 'joiners' | 'restore';

/**
 * A deployment's commands name it and their role in their Comment (≤ 100 characters), so a
 * command sent by an invocation that died before recording it can still be found.
 */
export function deploymentComment(deploymentId: string, role: DeploymentCommandRole): string {
  return `selfdeploy deploy ${deploymentId} ${role}`;
}

/** The deployment and role a command's Comment names, if it is a deployment's command. */
export function deploymentOfComment(
  comment: string | undefined,
): { deploymentId: string; role: DeploymentCommandRole } | undefined {
  const match = /^selfdeploy deploy (d-[a-z2-7]{12}) (canary|rest|joiners|restore)$/.exec(comment ?? '');
  return match?.[1] && match[2]
    ? { deploymentId: match[1], role: match[2] as DeploymentCommandRole }
    : undefined;
}

/** The Comment of the commands reconcile sends to bring drifted instances to the release. */
export const DRIFT_COMMENT = 'selfdeploy drift';

/** The place a command was sent for, from its Comment. */
export function placeOfComment(comment: string | undefined): Place | undefined {
  const match = /^selfdeploy (?:launch|reconcile) (AutoScalingGroup|WarmPool)$/.exec(comment ?? '');
  return match?.[1] as Place | undefined;
}

/** One instance's lifecycle wait, as a command's parameters and Comment name it. */
export interface Wait {
  readonly groupName: string;
  readonly hook: string;
  readonly instanceId: string;
  readonly place: Place;
}

/** What a command says of what it was sent for: its parameters and Comment, as SSM lists them. */
export interface SentFor {
  readonly Parameters?: Record<string, string[]>;
  readonly Comment?: string;
}

/**
 * Whether a command was sent for `wait` by its own account: same group, hook, instance and
 * place. Whether it was sent during the current wait, not an earlier one, is the scaling
 * activities' to say (wait-start.ts).
 */
export function isForWait(command: SentFor, wait: Wait): boolean {
  const parameter = (name: string) => command.Parameters?.[name]?.[0];
  return (
    parameter('autoScalingGroupName') === wait.groupName &&
    parameter('lifecycleHookName') === wait.hook &&
    parameter('instanceId') === wait.instanceId &&
    placeOfComment(command.Comment) === wait.place
  );
}
