import * as z from 'zod/mini';
import { InvalidInputError } from '../shared/errors';
import { describeIssues, documentParameter } from '../shared/validation';
import { type Overrides, overridesSchema, type Place } from './decisions';
import type { DeployTarget } from './deploy-start';
import { INSTANCE_ID, UUID } from './events';
import { upperHalfJitter } from './utilities';

/** SQS's largest per-message delay. */
const MAX_DELAY_SECONDS = 900;
/** The first re-look comes this soon; each later one 1.5 times later, up to the cap. */
const FIRST_DELAY_SECONDS = 2;
const DELAY_GROWTH = 1.5;
/**
 * Seconds between looks at an agent at most. A look costs a share of one
 * DescribeInstanceInformation (50 instances per call), so a late agent costs little, and an
 * agent that comes online is sent its command at most this long after.
 */
const MAX_RELOOK_SECONDS = 3;

/**
 * A launch waiting for its instance's SSM agent. The queue message is the whole state: no
 * table holds it, so any consumer may advance it and a lost consumer loses nothing.
 */
export interface AgentWait {
  readonly instanceId: string;
  readonly groupName: string;
  readonly hook: string;
  readonly token: string;
  readonly place: Place;
  readonly overrides?: Overrides;
  /** When the wait began (ms): the launch event's arrival in the queue, as SQS timestamps it. */
  readonly waitStart: number;
  /** Looks at the agent so far. */
  readonly attempt: number;
  /** Past this (ms) the wait is left to the reconciler and, last, to the hook's timeout. */
  readonly deadline: number;
  /** The last heartbeat of the lifecycle action (ms); the wait's start before the first. */
  readonly lastHeartbeat: number;
}

/** The message's marker: a body with it is an agent wait, anything else an EventBridge event. */
export const AGENT_WAIT_KIND = 'selfdeploy.agent-wait';

const time = () => z.iso.datetime();

const messageSchema = z.strictObject({
  kind: z.literal(AGENT_WAIT_KIND),
  version: z.literal(1),
  instanceId: z.string().check(z.regex(INSTANCE_ID, 'must be an EC2 instance id (i-…)')),
  group: documentParameter('autoScalingGroupName').check(z.minLength(1)),
  hook: documentParameter('lifecycleHookName').check(z.minLength(1)),
  token: z.string().check(z.regex(UUID, 'must be a lifecycle action token (UUID)')),
  place: z.enum(['AutoScalingGroup', 'WarmPool']),
  overrides: z.optional(overridesSchema),
  waitStart: time(),
  attempt: z.int().check(z.gte(0), z.lte(100_000)),
  deadline: time(),
  lastHeartbeat: time(),
});

/** The message body that carries `wait`. */
export function waitMessage(wait: AgentWait): string {
  const body: z.input<typeof messageSchema> = {
    kind: AGENT_WAIT_KIND,
    version: 1,
    instanceId: wait.instanceId,
    group: wait.groupName,
    hook: wait.hook,
    token: wait.token,
    place: wait.place,
    ...(wait.overrides && { overrides: wait.overrides }),
    waitStart: new Date(wait.waitStart).toISOString(),
    attempt: wait.attempt,
    deadline: new Date(wait.deadline).toISOString(),
    lastHeartbeat: new Date(wait.lastHeartbeat).toISOString(),
  };
  return JSON.stringify(body);
}

/** Whether a parsed message body claims to be an agent wait (and is read as one, or rejected). */
export function isWaitMessage(json: unknown): boolean {
  return typeof json === 'object' && json !== null && (json as { kind?: unknown }).kind === AGENT_WAIT_KIND;
}

/**
 * Reads an agent-wait message. Anyone allowed to send to the queue chooses its content, so it
 * is validated like any input, every problem named at once; what it claims (group, hook,
 * instance) is checked against the configuration before anything is sent.
 */
export function readWaitMessage(json: unknown): AgentWait {
  const parsed = messageSchema.safeParse(json);
  if (!parsed.success) {
    throw new InvalidInputError(`agent-wait message rejected: ${describeIssues(parsed.error)}`);
  }
  const message = parsed.data;
  return {
    instanceId: message.instanceId,
    groupName: message.group,
    hook: message.hook,
    token: message.token,
    place: message.place,
    ...(message.overrides && { overrides: message.overrides }),
    waitStart: Date.parse(message.waitStart),
    attempt: message.attempt,
    deadline: Date.parse(message.deadline),
    lastHeartbeat: Date.parse(message.lastHeartbeat),
  };
}

/** The wait for `target`'s agent, begun at `waitStart` (ms). */
export function newWait(target: DeployTarget, waitStart: number, agentWaitSeconds: number): AgentWait {
  return {
    instanceId: target.instanceId,
    groupName: target.groupName,
    hook: target.action.hook,
    token: target.action.token ?? '',
    place: target.place,
    ...(target.overrides && { overrides: target.overrides }),
    waitStart,
    attempt: 0,
    deadline: waitStart + agentWaitSeconds * 1000,
    lastHeartbeat: waitStart,
  };
}

/**
 * Seconds until the next look at the agent after `wait.attempt` looks: growing by half each
 * time from 2 s up to 3 s, never past the deadline by more than a second. The jitter (in the
 * upper half) spreads a burst's waits out, and comes from the wait's token and attempt rather
 * than chance: two copies of one wait (SQS and EventBridge deliver at least once) become
 * visible together and so are most often handled in one batch, where they count once.
 */
export function relookDelaySeconds(wait: Pick<AgentWait, 'token' | 'attempt'>, secondsLeft: number): number {
  const ceiling = Math.min(MAX_RELOOK_SECONDS, FIRST_DELAY_SECONDS * DELAY_GROWTH ** wait.attempt);
  const jittered = upperHalfJitter(ceiling, `${wait.token}/${wait.attempt}`);
  return Math.max(1, Math.min(jittered, Math.ceil(secondsLeft), MAX_DELAY_SECONDS));
}
