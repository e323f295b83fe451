/**
 * The operator's actions on a managed group, as the orchestrator takes them (a Lambda
 * console test event, `aws lambda invoke`, or the `selfdeploy` CLI) and what each answers.
 * One definition for the orchestrator, which validates with these schemas, and the CLI,
 * which builds its payloads and reads its answers with these types.
 */
import * as z from 'zod/mini';
import { documentParameter } from './validation';

/** A full commit SHA: what a release and every launch deploy. */
export const SHA_PATTERN = /^[0-9a-f]{40}$/;

/** Deployment ids: `d-` and 12 lowercase base-32 characters. */
export const DEPLOYMENT_ID_PATTERN = /^d-[a-z2-7]{12}$/;

const group = documentParameter('autoScalingGroupName').check(z.minLength(1));
/** Why, in the operator's words; kept with the release and the deployment. */
const reason = z.optional(z.string().check(z.minLength(1), z.maxLength(200)));

export const operatorActionSchema = z.discriminatedUnion('action', [
  /** The group's release, any deployment in flight and the last one, and every instance. */
  z.strictObject({ action: z.literal('status'), group }),
  /** The group's release record alone (cheap: one Parameter Store read). */
  z.strictObject({ action: z.literal('release'), group }),
  /** Deploy a revision (SHA, tag or branch) canary-first; promote it on full success. */
  z.strictObject({
    action: z.literal('deploy'),
    group,
    revision: documentParameter('revision').check(z.minLength(1)),
    reason,
  }),
  /** Deploy the release's `previous` SHA the same way, and promote it. */
  z.strictObject({ action: z.literal('rollback'), group, reason }),
  /** Let launches through without a deploy until resumed (the kill switch). */
  z.strictObject({ action: z.literal('pause'), group, reason }),
  z.strictObject({ action: z.literal('resume'), group }),
  /** The output tail of the newest self-deploy run on an instance of the group. */
  z.strictObject({
    action: z.literal('logs'),
    group,
    instanceId: z.optional(z.string().check(z.regex(/^(i|mi)-[0-9a-f]{8,17}$/, 'must be an instance id'))),
    deploymentId: z.optional(z.string().check(z.regex(DEPLOYMENT_ID_PATTERN, 'must be a deployment id'))),
  }),
]);
export type OperatorAction = z.output<typeof operatorActionSchema>;
export type OperatorActionName = OperatorAction['action'];
export const OPERATOR_ACTIONS = [
  'status',
  'release',
  'deploy',
  'rollback',
  'pause',
  'resume',
  'logs',
] as const satisfies readonly OperatorActionName[];

/** What a group runs: kept in Parameter Store, one parameter per group. */
export interface Release {
  readonly sha: string;
  /** The release before this one; what rollback deploys. */
  readonly previous?: string;
  /** ISO 8601. */
  readonly changedAt: string;
  /** Why it changed: the deployment's reason, `first deploy`, or `rollback`. */
  readonly reason: string;
  readonly deploymentId?: string;
}

/** An instance a deployment could not bring to its SHA, and why. */
export interface DeployFailure {
  readonly instanceId: string;
  /** The script's exit code (docs/instance.md), absent when SSM ended the run. */
  readonly exitCode?: number;
  readonly reason: string;
  readonly commandId?: string;
}

export const DEPLOYMENT_PHASES = ['canary', 'rest', 'joiners', 'promoted', 'failed'] as const;
export type DeploymentPhase = (typeof DEPLOYMENT_PHASES)[number];

/** A deployment's state, as Parameter Store keeps it while it runs and after it ends. */
export interface Deployment {
  readonly id: string;
  readonly group: string;
  readonly kind: 'deploy' | 'rollback';
  /** The revision as the operator named it. */
  readonly requested: string;
  /** The SHA the canary resolved `requested` to; every other instance gets exactly this. */
  readonly sha?: string;
  /** The release's SHA when the deployment started (what failed instances are restored to). */
  readonly baseline?: string;
  readonly reason: string;
  readonly requestedAt: string;
  readonly updatedAt: string;
  readonly phase: DeploymentPhase;
  /** Bumped by every transition; a transition is claimed with create-if-absent on its number. */
  readonly step: number;
  readonly canary?: string;
  /**
   * Commands of the current phase (of a `standby` deployment: of its batch; of an ended one: its
   * restore), newest last, at most MAX_RECORDED_COMMANDS: the record stays within Parameter
   * Store's 4 KB whatever the group's size. SSM's command history (by Comment) has every one.
   */
  readonly commands: readonly { readonly commandId: string; readonly phase: DeploymentPhase }[];
  /** How many commands the current phase sent, where more than `commands` holds. */
  readonly commandCount?: number;
  /** At most MAX_RECORDED_FAILURES; `failureCount` counts them all. */
  readonly failures: readonly DeployFailure[];
  /** How many instances failed (or were given up on), where more than `failures` names. */
  readonly failureCount?: number;
  /**
   * Instances a `standby` deployment gave up on (SendCommand or EnterStandby refused them):
   * returned to service unchanged, named in `failures`, left to reconcile's drift repair.
   */
  readonly skipped?: readonly string[];
  /**
   * Set on reconcile's drift repair in a `standby` group: the drifted instances it brings back to
   * the release through Standby. It has no canary and promotes nothing.
   */
  readonly driftRepair?: readonly string[];
  /** A `standby` group's batch out of service: moved to Standby by this deployment, not yet returned. */
  readonly standby?: StandbyBatch;
}

/** Instances a deployment of a `standby` group took out of service, and where they are on their way. */
export interface StandbyBatch {
  readonly instanceIds: readonly string[];
  /**
   * `entering`: EnterStandby asked (none chosen yet while `waiting`); `deploying`: the batch's
   * command was sent; `restoring`: the failed ones were sent the release back; `returning`:
   * ExitStandby asked.
   */
  readonly stage: 'entering' | 'deploying' | 'restoring' | 'returning';
  /** Why the batch waits on the group's sizes (MinSize, MaxSize), in words an operator can act on. */
  readonly waiting?: string;
}

export type AgentStatus = 'Online' | 'ConnectionLost' | 'Inactive' | 'not registered';

/** One instance as status shows it. */
export interface InstanceStatus {
  readonly instanceId: string;
  readonly lifecycleState: string;
  readonly agent: AgentStatus;
  /** From the instance's `selfdeploy:revision` tag: the SHA its last successful deploy left live. */
  readonly sha?: string;
  /** From its `selfdeploy:last-deploy` tag. */
  readonly lastDeploy?: {
    readonly result: 'success' | 'failure';
    readonly exitCode?: number;
    readonly at: string;
    readonly sha?: string;
  };
  /** Runs something other than the release (or nothing known). */
  readonly drift: boolean;
}

export interface GroupStatus {
  readonly action: 'status';
  readonly group: string;
  /** `release`: launches deploy the release; `branch`: they follow the branch head (riskier). */
  readonly follow: 'release' | 'branch';
  readonly release?: Release;
  readonly paused?: { readonly since: string; readonly reason: string };
  readonly deployment?: Deployment;
  readonly lastDeployment?: Deployment;
  /** A `standby` group's last drift repair, kept apart from `lastDeployment`. */
  readonly lastRepair?: Deployment;
  readonly instances: readonly InstanceStatus[];
}

/** What each action answers; every answer names the SHA or deployment id it is about. */
export type OperatorAnswer =
  | GroupStatus
  | { readonly action: 'release'; readonly group: string; readonly release?: Release }
  | {
      readonly action: 'deploy' | 'rollback';
      readonly group: string;
      readonly deploymentId: string;
      readonly phase: DeploymentPhase;
      /** Set when the revision was a full SHA or the group had no instance to resolve it on. */
      readonly sha?: string;
      readonly canary?: string;
      readonly summary: string;
    }
  | {
      readonly action: 'pause' | 'resume';
      readonly group: string;
      readonly paused: boolean;
      readonly summary: string;
    }
  | {
      readonly action: 'logs';
      readonly group: string;
      readonly runs: readonly {
        readonly instanceId: string;
        readonly commandId: string;
        readonly status: string;
        readonly requestedAt?: string;
        readonly outputTail: string;
      }[];
    };
