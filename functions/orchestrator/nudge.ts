// Nudges: nothing tells selfdeploy that an instance reached Standby or InService, so a
// standby deployment that waits on Auto Scaling puts a small delayed message on the event
// queue naming the step it waits at; consuming it advances the deployment as reconcile does.
// The reconcile schedule stays the backstop for a nudge lost or not sent.
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import * as z from 'zod/mini';
import { InvalidInputError } from '../shared/errors';
import { DEPLOYMENT_ID_PATTERN, type Deployment } from '../shared/operator-actions';
import { describeIssues, documentParameter } from '../shared/validation';
import { managedGroup } from './config';
import type { Deps } from './deps';
import { type GroupRecord, readGroupRecord } from './release-store';
import { upperHalfJitter } from './utilities';

/** The message's marker: a body with it is a nudge (and is read as one, or rejected). */
export const NUDGE_KIND = 'selfdeploy.standby-nudge';

/**
 * What a standby deployment waits on Auto Scaling for: its batch to reach `Standby`, to be
 * back `InService`, or `room` within MinSize / MaxSize (which only the group's sizes give).
 */
export type NudgeWait = 'standby' | 'in-service' | 'room';

/** A nudge: look at the group's deployment `deploymentId` again if it is still at `step`. */
export interface Nudge {
  readonly groupName: string;
  readonly deploymentId: string;
  /** The deployment's transition number when the nudge was sent: a later one makes it stale. */
  readonly step: number;
  readonly waitingFor: NudgeWait;
  /** Nudges sent for this step before this one. */
  readonly attempt: number;
}

/** The first nudge of a step comes this soon; each later one 1.5 times later, up to the cap. */
export const FIRST_NUDGE_SECONDS = 2;
export const NUDGE_GROWTH = 1.5;
export const MAX_NUDGE_SECONDS = 15;
/** Waits for room within MinSize / MaxSize end only when someone changes the group: looked at this seldom. */
export const ROOM_NUDGE_SECONDS = 60;
/** Nudges of one step at most; after them the reconcile schedule looks (a group left at MinSize, say). */
export const MAX_NUDGES_PER_STEP = 60;

const messageSchema = z.strictObject({
  kind: z.literal(NUDGE_KIND),
  version: z.literal(1),
  group: documentParameter('autoScalingGroupName').check(z.minLength(1)),
  deploymentId: z.string().check(z.regex(DEPLOYMENT_ID_PATTERN, 'must be a deployment id (d-…)')),
  step: z.int().check(z.gte(0), z.lte(1_000_000)),
  waitingFor: z.enum(['standby', 'in-service', 'room']),
  attempt: z.int().check(z.gte(0), z.lt(MAX_NUDGES_PER_STEP)),
});

/** The message body that carries `nudge`. */
function nudgeMessage(nudge: Nudge): string {
  const body: z.input<typeof messageSchema> = {
    kind: NUDGE_KIND,
    version: 1,
    group: nudge.groupName,
    deploymentId: nudge.deploymentId,
    step: nudge.step,
    waitingFor: nudge.waitingFor,
    attempt: nudge.attempt,
  };
  return JSON.stringify(body);
}

/** Whether a parsed message body claims to be a nudge. */
export function isNudgeMessage(json: unknown): boolean {
  return typeof json === 'object' && json !== null && (json as { kind?: unknown }).kind === NUDGE_KIND;
}

/**
 * Reads a nudge message. Anyone allowed to send to the queue chooses its content, so it is
 * validated like any input, every problem named at once; what it names is trusted no further
 * than to read that managed group's own record.
 */
export function readNudgeMessage(json: unknown): Nudge {
  const parsed = messageSchema.safeParse(json);
  if (!parsed.success) {
    throw new InvalidInputError(`standby nudge rejected: ${describeIssues(parsed.error)}`);
  }
  const message = parsed.data;
  return {
    groupName: message.group,
    deploymentId: message.deploymentId,
    step: message.step,
    waitingFor: message.waitingFor,
    attempt: message.attempt,
  };
}

/** What a deployment in flight waits on Auto Scaling for; undefined when it waits on nothing of it (a command runs). */
function waitOf(deployment: Deployment): NudgeWait | undefined {
  const batch = deployment.standby;
  if (!batch) return undefined;
  if (batch.waiting) return 'room';
  if (batch.stage === 'entering') return 'standby';
  if (batch.stage === 'returning') return 'in-service';
  return undefined;
}

/**
 * Seconds until the nudge after `attempt` earlier ones of a step: 2 s, growing by half each
 * time up to 15 s (a batch usually reaches Standby or InService within seconds, though a load
 * balancer's draining may take minutes); 60 s while it waits for room. Jittered in the upper
 * half by the deployment, step and attempt, so a number of deployments spread out.
 */
export function nudgeDelaySeconds(nudge: Omit<Nudge, 'groupName'>): number {
  const ceiling =
    nudge.waitingFor === 'room'
      ? ROOM_NUDGE_SECONDS
      : Math.min(MAX_NUDGE_SECONDS, FIRST_NUDGE_SECONDS * NUDGE_GROWTH ** nudge.attempt);
  return Math.max(1, upperHalfJitter(ceiling, `${nudge.deploymentId}/${nudge.step}/${nudge.attempt}`));
}

/**
 * Nudges the deployment as it now stands (just written): the first nudge of its step, when it
 * waits on Auto Scaling. A nudge that cannot be sent is logged, never fatal: reconcile looks.
 */
export function nudgeStep(deps: Deps, deployment: Deployment): Promise<void> {
  const waitingFor = waitOf(deployment);
  if (!waitingFor) return Promise.resolve();
  return send(deps, {
    groupName: deployment.group,
    deploymentId: deployment.id,
    step: deployment.step,
    waitingFor,
    attempt: 0,
  });
}

/**
 * Nudges again a deployment a nudge found still waiting at the same step, unless the step has
 * had its nudges (the reconcile schedule looks after that).
 */
export function nudgeAgain(deps: Deps, deployment: Deployment, nudged: Nudge): Promise<void> {
  const waitingFor = waitOf(deployment);
  if (!waitingFor) return Promise.resolve();
  const attempt = nudged.attempt + 1;
  if (attempt >= MAX_NUDGES_PER_STEP) {
    deps.logger.info('standby deployment still waits after its nudges; reconcile looks from now on', {
      group: deployment.group,
      deploymentId: deployment.id,
      step: deployment.step,
      waitingFor,
    });
    return Promise.resolve();
  }
  return send(deps, { ...nudged, waitingFor, attempt });
}

async function send(deps: Deps, nudge: Nudge): Promise<void> {
  const delaySeconds = nudgeDelaySeconds(nudge);
  try {
    await deps.clients.sqs.send(
      new SendMessageCommand({
        QueueUrl: deps.config.waitQueueUrl,
        MessageBody: nudgeMessage(nudge),
        DelaySeconds: delaySeconds,
      }),
    );
  } catch (error) {
    deps.logger.warn('could not nudge the standby deployment; reconcile moves it on', {
      group: nudge.groupName,
      deploymentId: nudge.deploymentId,
      step: nudge.step,
      error: (error as Error).message,
    });
  }
}

/** What became of a nudge. */
export type NudgeOutcome =
  | { readonly outcome: 'nudged'; readonly deploymentId: string; readonly advance: string }
  | { readonly outcome: 'ignored'; readonly reason: string };

/**
 * The group's record (read fresh) when the nudge may advance its deployment: the named managed
 * group's deployment in flight is the one named, still at the step named, and goes through
 * Standby. Anything else is ignored (a stale nudge: the deployment moved on, and whoever moved
 * it nudged the new step) and logged. One GetParametersByPath, nothing written or sent.
 */
export async function nudgedRecord(deps: Deps, nudge: Nudge): Promise<GroupRecord | NudgeOutcome> {
  if (!managedGroup(deps.config, nudge.groupName)) {
    throw new InvalidInputError(`standby nudge: group ${nudge.groupName} is not managed by selfdeploy`);
  }
  const record = await readGroupRecord(deps, nudge.groupName, true);
  const deployment = record.deployment;
  const reason =
    deployment?.id !== nudge.deploymentId
      ? `deployment ${nudge.deploymentId} is not in flight in group ${nudge.groupName}`
      : !deployment.standby
        ? `deployment ${nudge.deploymentId} does not deploy through Standby`
        : deployment.step !== nudge.step
          ? `deployment ${nudge.deploymentId} moved on from step ${nudge.step} to ${deployment.step}`
          : undefined;
  if (reason) {
    deps.logger.info('standby nudge ignored', {
      group: nudge.groupName,
      deploymentId: nudge.deploymentId,
      step: nudge.step,
      reason,
    });
    return { outcome: 'ignored', reason };
  }
  return record;
}
