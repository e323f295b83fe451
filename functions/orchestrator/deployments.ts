import { randomBytes } from 'node:crypto';
import {
  DescribeAutoScalingGroupsCommand,
  DescribeAutoScalingInstancesCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  type CommandFilter,
  GetParameterCommand,
  ListCommandInvocationsCommand,
  ListCommandsCommand,
  ParameterNotFound,
} from '@aws-sdk/client-ssm';
import { ActionRefusedError, DeploymentInProgressError, InvalidInputError } from '../shared/errors';
import { isTerminalStatus } from '../shared/event-patterns';
import { MetricName } from '../shared/metric-names';
import type {
  DeployFailure,
  Deployment,
  OperatorAction,
  OperatorAnswer,
  StandbyBatch,
} from '../shared/operator-actions';
import {
  agentStatuses,
  deployParameters,
  failureFields,
  isAgentNotReady,
  MAX_INSTANCES_PER_COMMAND,
  readInvocation,
  sendSelfDeploy,
} from './commands';
import { type GroupConfig, managedGroup } from './config';
import {
  type DeploymentCommandRole,
  DRIFT_COMMENT,
  deploymentComment,
  deploymentOfComment,
} from './decisions';
import {
  type Candidate,
  chooseCanary,
  failureOf,
  isFullSha,
  MAX_RECORDED_FAILURES,
  nextClaim,
  type PhaseVerdict,
  phaseAfter,
  phaseVerdict,
  promotedRelease,
  resolvedSha,
} from './deployment-steps';
import type { Deps } from './deps';
import { type Nudge, type NudgeOutcome, nudgeAgain, nudgedRecord, nudgeStep } from './nudge';
import { deleteRecords, type GroupRecord, groupPath, readGroupRecord, writeRecord } from './release-store';
import { readDeployTags } from './revision-tags';
import {
  concurrencyLimit,
  enterRoom,
  enterStandby,
  exitRoom,
  exitStandby,
  type GroupView,
  MAX_STANDBY_BATCH,
  viewGroup,
} from './standby';
import { chunk, mapLimited } from './utilities';

type Action<Name extends OperatorAction['action']> = Extract<OperatorAction, { action: Name }>;
type DeployAnswer = Extract<OperatorAnswer, { action: 'deploy' | 'rollback' }>;

/** A canary command not on record this long after the deployment began was never sent. */
const ADOPT_AFTER_MS = 120_000;
/** Commands read at once when a deployment's statuses are read. */
const READ_CONCURRENCY = 5;
/** Failed runs whose output is read for the log and the record. */
const FAILED_RUNS_READ = 10;
/** Commands a deployment record names; SSM's command history has the others (the record holds 4 KB). */
const MAX_RECORDED_COMMANDS = 10;
/** Instances a `standby` deployment gives up on before it fails instead: something is wrong group-wide. */
const MAX_SKIPPED = 10;

/** Deploys a revision canary-first; answers at once with the deployment id (status events and reconcile advance it). */
export function deploy(deps: Deps, action: Action<'deploy'>): Promise<DeployAnswer> {
  return startDeployment(deps, {
    groupName: action.group,
    kind: 'deploy',
    requested: action.revision,
    reason: action.reason ?? `deploy ${action.revision}`,
  });
}

/** Deploys the release's `previous` SHA the same way (canary first) and promotes it on success. */
export async function rollback(deps: Deps, action: Action<'rollback'>): Promise<DeployAnswer> {
  requireManaged(deps, action.group);
  const record = await readGroupRecord(deps, action.group, true);
  const { release } = record;
  if (!release?.previous) {
    throw new ActionRefusedError(
      release
        ? `group ${action.group} has nothing to roll back to: release ${release.sha} has no previous release`
        : `group ${action.group} has nothing to roll back to: it has no release yet`,
    );
  }
  return startDeployment(deps, {
    groupName: action.group,
    kind: 'rollback',
    requested: release.previous,
    reason: action.reason ?? `rollback to ${release.previous}`,
    record,
  });
}

function requireManaged(deps: Deps, name: string): GroupConfig {
  const group = managedGroup(deps.config, name);
  if (!group) {
    const managed = Object.keys(deps.config.groups).join(', ');
    throw new InvalidInputError(`group ${name} is not managed by selfdeploy (managed: ${managed})`);
  }
  return group;
}

interface DeploymentRequest {
  readonly groupName: string;
  readonly kind: Deployment['kind'];
  readonly requested: string;
  readonly reason: string;
  /** The group's record when the caller has just read it fresh, so it is not read twice. */
  readonly record?: GroupRecord;
}

async function startDeployment(deps: Deps, request: DeploymentRequest): Promise<DeployAnswer> {
  const { groupName, kind, requested } = request;
  const group = requireManaged(deps, groupName);
  const record = request.record ?? (await readGroupRecord(deps, groupName, true));
  if (record.paused) {
    throw new ActionRefusedError(
      `group ${groupName} is paused since ${record.paused.since} (${record.paused.reason}): resume it before a ${kind}`,
    );
  }
  if (record.deployment) throw inProgress(record.deployment);
  for (const last of [record.lastDeployment, record.lastRepair]) {
    const strays = last?.standby;
    if (strays && strays.instanceIds.length > 0) {
      throw new ActionRefusedError(
        `group ${groupName} still has ${strays.instanceIds.join(', ')} in Standby from ${last.driftRepair ? 'drift repair' : 'deployment'} ${last.id}${strays.waiting ? ` (${strays.waiting})` : ''}: reconcile returns them to service first; ${kind} again after`,
      );
    }
  }

  const standby = group.deployWith === 'standby';
  const view = await viewGroup(deps, groupName);
  const candidates = await candidatesOf(deps, inServiceOf(view));
  const canary = chooseCanary(candidates, record.release?.sha);
  if (canary && standby) {
    const room = enterRoom(view.sizes, 1, 1);
    if ('waiting' in room) {
      throw new ActionRefusedError(
        `${kind} refused: ${room.waiting}, or deploy this group in place (deployWith: in-place)`,
      );
    }
  }
  const now = new Date(deps.clock.now()).toISOString();
  const deployment: Deployment = {
    id: newDeploymentId(),
    group: groupName,
    kind,
    requested,
    ...(record.release && { baseline: record.release.sha }),
    reason: request.reason,
    requestedAt: now,
    updatedAt: now,
    phase: 'canary',
    step: 0,
    ...(canary && { canary }),
    commands: [],
    failures: [],
  };
  const answer = (fields: Pick<DeployAnswer, 'phase' | 'summary'> & Partial<DeployAnswer>): DeployAnswer => ({
    action: kind,
    group: groupName,
    deploymentId: deployment.id,
    ...fields,
  });

  if (!canary) {
    if (!isFullSha(requested)) {
      throw new ActionRefusedError(
        `group ${groupName} has no InService instance with an online SSM agent to resolve ${JSON.stringify(requested)} to a commit (${candidates.length} InService): ${kind} a full 40-character SHA instead`,
      );
    }
    await lock(deps, deployment);
    await promote(deps, { ...deployment, sha: requested }, 0, record);
    return answer({
      phase: 'promoted',
      sha: requested,
      summary: `${groupName}: no InService instance to deploy to; release is now ${requested} (deployment ${deployment.id})`,
    });
  }

  if (standby) return startStandbyCanary(deps, deployment, canary, answer);

  await lock(deps, deployment);
  let commandId: string;
  try {
    commandId = await sendSelfDeploy(
      deps,
      [canary],
      {
        ...deployParameters(group, { revision: requested }),
        migrate: 'true',
        autoScalingGroupName: groupName,
      },
      deploymentComment(deployment.id, 'canary'),
    );
  } catch (error) {
    // Nothing was sent: the lock goes, so the operator can simply try again.
    await deleteRecords(deps, groupName, ['deployment']);
    throw error;
  }
  await writeRecord(deps, groupName, 'deployment', {
    ...deployment,
    commands: [{ commandId, phase: 'canary' }],
  } satisfies Deployment);
  deps.logger.info(`${kind} started`, {
    group: groupName,
    deploymentId: deployment.id,
    requested,
    canary,
    commandId,
    ...(deployment.baseline && { baseline: deployment.baseline }),
  });
  return answer({
    phase: 'canary',
    canary,
    ...(isFullSha(requested) && { sha: requested }),
    summary: `${groupName}: ${kind} ${deployment.id} of ${requested} started on canary ${canary} (migrations run there only); the rest follow when it succeeds`,
  });
}

/**
 * A `standby` group's deployment starts by taking its canary out of service: the lock holds
 * the intent (the canary, stage `entering`) before EnterStandby is asked, so an invocation
 * that stops in between leaves a record that reconcile finishes. The canary's command goes
 * out once it is in Standby (its load balancer has drained it).
 */
async function startStandbyCanary(
  deps: Deps,
  deployment: Deployment,
  canary: string,
  answer: (fields: Pick<DeployAnswer, 'phase' | 'summary'> & Partial<DeployAnswer>) => DeployAnswer,
): Promise<DeployAnswer> {
  await lock(deps, { ...deployment, standby: { instanceIds: [canary], stage: 'entering' } });
  try {
    await enterStandby(deps, deployment.group, [canary]);
  } catch (error) {
    // Nothing left service: the lock goes, so the operator can simply try again.
    await deleteRecords(deps, deployment.group, ['deployment']);
    throw error;
  }
  await nudgeStep(deps, { ...deployment, standby: { instanceIds: [canary], stage: 'entering' } });
  deps.logger.info(`${deployment.kind} started`, {
    group: deployment.group,
    deploymentId: deployment.id,
    requested: deployment.requested,
    canary,
    standby: [canary],
  });
  return answer({
    phase: 'canary',
    canary,
    ...(isFullSha(deployment.requested) && { sha: deployment.requested }),
    summary: `${deployment.group}: ${deployment.kind} ${deployment.id} of ${deployment.requested} started: canary ${canary} enters Standby and deploys once out of service (migrations run there only); the rest follow in Standby batches when it succeeds`,
  });
}

/** What reconcile's drift repair in a `standby` group did. */
export type StandbyRepair =
  | { readonly deploymentId: string; readonly standby: readonly string[] }
  | { readonly skipped: string };

/**
 * Reconcile's drift repair in a `standby` group (`view`: its sizes and states as reconcile just
 * read them): a deployment of the release's SHA to the drifted instances only, through Standby
 * batches like any (no canary: the release's migrations ran when it was deployed), holding the
 * group's lock while it runs and promoting nothing. The first batch leaves now; status events
 * and reconcile move it on.
 */
export async function startStandbyRepair(
  deps: Deps,
  view: GroupView,
  sha: string,
  drifted: readonly string[],
): Promise<StandbyRepair> {
  const groupName = view.sizes.name;
  const room = enterRoom(
    view.sizes,
    drifted.length,
    concurrencyLimit(deps.config.redeployMaxConcurrency, inServiceOf(view).length),
  );
  if ('waiting' in room) return { skipped: room.waiting };
  const chosen = [...drifted].sort().slice(0, Math.min(room.take, MAX_STANDBY_BATCH));
  const now = new Date(deps.clock.now()).toISOString();
  const deployment: Deployment = {
    id: newDeploymentId(),
    group: groupName,
    kind: 'deploy',
    requested: sha,
    sha,
    baseline: sha,
    reason: 'drift repair',
    requestedAt: now,
    updatedAt: now,
    phase: 'rest',
    step: 0,
    commands: [],
    failures: [],
    // The first drifted ones only, so the record stays small: the next reconcile repairs the others.
    driftRepair: [...drifted].sort().slice(0, MAX_STANDBY_BATCH),
    standby: { instanceIds: chosen, stage: 'entering' },
  };
  if (!(await writeRecord(deps, groupName, 'deployment', deployment, true))) {
    return { skipped: 'a deployment started meanwhile' };
  }
  try {
    await enterStandby(deps, groupName, chosen);
  } catch (error) {
    // Refused: the record stays, and the next advance asks again or drops them.
    if (!isValidationError(error)) throw error;
  }
  await nudgeStep(deps, deployment);
  deps.logger.info('drift repair started through Standby', {
    group: groupName,
    deploymentId: deployment.id,
    sha,
    drifted,
    standby: chosen,
  });
  return { deploymentId: deployment.id, standby: chosen };
}

/** Takes the group's one-deployment lock (created with Overwrite=false). */
async function lock(deps: Deps, deployment: Deployment): Promise<void> {
  if (await writeRecord(deps, deployment.group, 'deployment', deployment, true)) return;
  const running = (await readGroupRecord(deps, deployment.group, true)).deployment;
  throw running
    ? inProgress(running)
    : new DeploymentInProgressError('unknown', `group ${deployment.group} has a deployment in flight`);
}

function inProgress(running: Deployment): DeploymentInProgressError {
  if (running.driftRepair) {
    return new DeploymentInProgressError(
      running.id,
      `group ${running.group} has drift repair ${running.id} in flight (reconcile bringing ${running.driftRepair.join(', ')} back to the release ${running.requested} through Standby, since ${running.requestedAt}): wait for it to end, within a few batches`,
    );
  }
  return new DeploymentInProgressError(
    running.id,
    `group ${running.group} has deployment ${running.id} in flight (${running.kind} of ${running.requested}, phase ${running.phase}, since ${running.requestedAt}): wait for it to end`,
  );
}

/** `d-` and 12 base-32 characters (60 random bits). */
function newDeploymentId(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz234567';
  let bits = 0n;
  for (const byte of randomBytes(8)) bits = (bits << 8n) | BigInt(byte);
  let id = '';
  for (let index = 0; index < 12; index += 1) {
    id += alphabet[Number((bits >> BigInt(index * 5)) & 31n)];
  }
  return `d-${id}`;
}

/** The InService instances of a group view. */
export function inServiceOf(view: GroupView): string[] {
  return [...view.states].flatMap(([id, state]) => (state === 'InService' ? [id] : []));
}

/** Instances with their agent status and revision tag. */
async function candidatesOf(deps: Deps, ids: readonly string[]): Promise<Candidate[]> {
  const [agents, shas] = await Promise.all([agentStatuses(deps, ids), revisionTags(deps, ids)]);
  return ids.map((instanceId) => ({ instanceId, agent: agents.get(instanceId), sha: shas.get(instanceId) }));
}

/** The InService instances of a group. */
export async function inServiceInstances(deps: Deps, groupName: string): Promise<string[]> {
  const output = await deps.clients.autoScaling.send(
    new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [groupName] }),
  );
  return (output.AutoScalingGroups?.[0]?.Instances ?? []).flatMap((instance) =>
    instance.LifecycleState === 'InService' && instance.InstanceId ? [instance.InstanceId] : [],
  );
}

/** Each instance's `selfdeploy:revision` tag, where it has one. */
export async function revisionTags(deps: Deps, instanceIds: readonly string[]): Promise<Map<string, string>> {
  const tags = await readDeployTags(deps, instanceIds);
  return new Map([...tags].flatMap(([id, { sha }]) => (sha ? [[id, sha] as const] : [])));
}

/**
 * Consumes a nudge: advances the group's deployment exactly as reconcile does (the same
 * claims), when it is the deployment the nudge names, still at its step; else ignored.
 */
export async function advanceNudged(deps: Deps, nudge: Nudge): Promise<NudgeOutcome> {
  const record = await nudgedRecord(deps, nudge);
  if ('outcome' in record) return record;
  const advanced = await advanceDeployment(deps, nudge.groupName, record, nudge);
  return { outcome: 'nudged', deploymentId: nudge.deploymentId, advance: advanced.outcome };
}

/** What an advance did to a group's deployment. */
export type AdvanceOutcome =
  | { readonly outcome: 'none' }
  /** Its current phase still runs. */
  | { readonly outcome: 'running'; readonly deploymentId: string }
  /** Another execution holds the claim on its next transition. */
  | { readonly outcome: 'claimed-elsewhere'; readonly deploymentId: string }
  | { readonly outcome: 'advanced'; readonly deploymentId: string; readonly phase: Deployment['phase'] };

/** A command of a deployment as ListCommands describes it. */
interface CommandState {
  readonly status: string | undefined;
  readonly instanceIds: readonly string[];
}

/**
 * Moves the group's deployment in flight on when its current phase has ended: canary →
 * rest → joiners → promoted, or failed. Called for every finished command of the group and
 * by every reconcile run; its state is only in Parameter Store, so any execution may call it
 * at any time. Each transition is claimed with create-if-absent on its number: of duplicate
 * events or concurrent executions, one moves it and the others do nothing. `fresh`: the group's
 * record when the caller has just read it fresh, so it is not read twice. `nudged`: the nudge
 * that asked, nudged again when the deployment still waits at its step.
 */
export async function advanceDeployment(
  deps: Deps,
  groupName: string,
  fresh?: GroupRecord,
  nudged?: Nudge,
): Promise<AdvanceOutcome> {
  const group = managedGroup(deps.config, groupName);
  if (!group) return { outcome: 'none' };
  const record = fresh ?? (await readGroupRecord(deps, groupName, true));
  let deployment = record.deployment;
  if (!deployment) {
    const stray = strayRecord(record);
    return stray ? returnStrays(deps, stray.last, stray.slot) : { outcome: 'none' };
  }
  const deploymentId = deployment.id;
  // A deployment goes on as it started: in Standby batches or in place.
  if (deployment.standby) {
    return advanceStandby(deps, group, record, deployment, deployment.standby, nudged);
  }

  const phase = await phaseStates(deps, deployment);
  const states = phase.states;
  let verdict = phase.verdict;
  let neverSent: DeployFailure | undefined;
  if (verdict.kind === 'unsent' && deployment.phase === 'canary') {
    // The deploy action records the canary's command right after sending it; one that is
    // missing long after was either never sent, or sent by an action that stopped before recording it.
    if (deps.clock.now() - Date.parse(deployment.requestedAt) < ADOPT_AFTER_MS) {
      return { outcome: 'running', deploymentId };
    }
    const adopted = await findCanaryCommand(deps, deployment);
    if (adopted) {
      deployment = {
        ...deployment,
        commands: [...deployment.commands, { commandId: adopted, phase: 'canary' }],
      };
      for (const [commandId, state] of await commandStates(deps, [{ commandId: adopted }])) {
        states.set(commandId, state);
      }
      verdict = phaseVerdict(deployment, statusesOf(states));
    } else {
      neverSent = {
        instanceId: deployment.canary ?? 'none',
        reason: 'the canary command was never sent (the deploy action stopped before sending it)',
      };
      verdict = { kind: 'failed', commandIds: [] };
    }
  }
  if (verdict.kind === 'running') return { outcome: 'running', deploymentId };

  const step = await claimTransition(deps, deployment, record);
  if (step === undefined) return { outcome: 'claimed-elsewhere', deploymentId };
  const claimed = { ...deployment, step };
  const finished = { ...record, claimedSteps: [...record.claimedSteps, step] };

  if (verdict.kind === 'failed') {
    const failed = neverSent
      ? { failures: [neverSent], ran: [] }
      : await failuresOf(deps, claimed, verdict.commandIds);
    await fail(deps, group, claimed, failed, finished);
    return { outcome: 'advanced', deploymentId, phase: 'failed' };
  }

  let sha = claimed.sha;
  if (claimed.phase === 'canary') {
    const canaryCommand = claimed.commands.find((command) => command.phase === 'canary');
    const canary = claimed.canary;
    if (!canaryCommand || !canary) throw new Error(`deployment ${deploymentId} has no canary on record`);
    sha = resolvedSha(
      (await readInvocation(deps, canaryCommand.commandId, canary)).StandardOutputContent ?? '',
    );
    if (!sha) {
      const reason = `the canary's run succeeded but reported no commit SHA for ${claimed.requested}`;
      const failures = [{ instanceId: canary, reason, commandId: canaryCommand.commandId }];
      await fail(deps, group, claimed, { failures, ran: [canary] }, finished);
      return { outcome: 'advanced', deploymentId, phase: 'failed' };
    }
  }
  if (!sha) throw new Error(`deployment ${deploymentId} is past its canary without a SHA`);
  const resolved = { ...claimed, sha };

  // Who got the SHA so far: every command's instances (all of them, not only this phase's).
  const sentStates = await commandStates(
    deps,
    resolved.commands.filter((command) => !states.has(command.commandId)),
  );
  const sent = new Set([...states.values(), ...sentStates.values()].flatMap((state) => state.instanceIds));
  if (resolved.canary) sent.add(resolved.canary);

  const next = phaseAfter(resolved.phase);
  if (next !== 'promoted') {
    const targets = await onlineTargets(deps, groupName, sent);
    if (targets.length > 0) {
      await sendPhase(deps, group, resolved, next, targets);
      return { outcome: 'advanced', deploymentId, phase: next };
    }
    // Nothing to send: no status event would come for this phase, and the phase after it (the
    // joiners) would find the same nobody, so the deployment is promoted at once.
  }
  await promote(deps, resolved, step, finished);
  return { outcome: 'advanced', deploymentId, phase: 'promoted' };
}

/**
 * Moves a `standby` group's deployment on, one batch at a time: `entering` (EnterStandby asked)
 * → in Standby: its command is sent (`deploying`) → finished: ExitStandby (`returning`) → back
 * InService: the next batch enters, or, with no InService instance left unsent, the release is
 * promoted. A failed run ends the deployment with the batch still out of service, the failed
 * ones sent the release back (`restoring`); returnStrays brings the batch back after that.
 * Every step is claimed like any transition; instances gone from the group leave the batch.
 * Each step that leaves it waiting on Auto Scaling is nudged (save), and a nudge that finds it
 * still waiting at that step nudges again (`stillWaiting`).
 */
async function advanceStandby(
  deps: Deps,
  group: GroupConfig,
  record: GroupRecord,
  deployment: Deployment,
  batch: StandbyBatch,
  nudged: Nudge | undefined,
): Promise<AdvanceOutcome> {
  const deploymentId = deployment.id;
  const running: AdvanceOutcome = { outcome: 'running', deploymentId };
  const stillWaiting = () => waitingStill(deps, deployment, nudged);
  const view = await viewGroup(deps, deployment.group);
  const present = batch.instanceIds.filter((id) => view.states.has(id));
  const inState = (state: string) => present.filter((id) => view.states.get(id) === state);

  if (batch.stage === 'entering') {
    if (present.length === 0) return nextStandbyBatch(deps, group, record, deployment, view, nudged);
    if (inState('EnteringStandby').length > 0) return stillWaiting();
    const notYet = inState('InService');
    const ready = inState('Standby');
    // Neither on the way nor in Standby (terminating, say): the batch has nobody left to deploy.
    if (notYet.length === 0 && ready.length === 0)
      return nextStandbyBatch(deps, group, record, deployment, view, nudged);
    const step = await claimTransition(deps, deployment, record);
    if (step === undefined) return { outcome: 'claimed-elsewhere', deploymentId };
    const claimed = { ...deployment, step };
    if (notYet.length > 0) {
      // The invocation that chose the batch stopped before EnterStandby, or its call was refused: ask
      // again; refused again, they stay in service, given up on.
      let kept = present;
      let given: Deployment = claimed;
      try {
        await enterStandby(deps, deployment.group, notYet);
      } catch (error) {
        if (!isValidationError(error)) throw error;
        kept = present.filter((id) => !notYet.includes(id));
        // Refused again: the deployment gives up on them, so no later batch chooses them again.
        given = giveUp(
          claimed,
          notYet.map((instanceId) => ({
            instanceId,
            reason: `EnterStandby refused it (${(error as Error).message.slice(0, 120)}): left in service unchanged, left to drift repair`,
          })),
        );
        deps.logger.warn('instances could not enter Standby; the deployment gives up on them', {
          group: deployment.group,
          deploymentId,
          instanceIds: notYet,
          error: (error as Error).message,
        });
      }
      await save(deps, { ...given, standby: { instanceIds: kept, stage: 'entering' } });
      return running;
    }
    const sent = await sendStandbyBatch(deps, group, claimed, ready);
    if (sent.commandIds.length === 0) {
      if (sent.error) {
        // Nothing went out (throttled, say): the next advance sends again.
        await save(deps, claimed);
        throw sent.error;
      }
      // Nobody in the batch could be sent to (its agents are gone): back to service it goes,
      // given up on, so no later batch takes it out again.
      const returned = await returnBatch(deps, view, present);
      await save(deps, {
        ...giveUp(claimed, sent.refused),
        standby: {
          instanceIds: present,
          stage: 'returning',
          ...(returned.waiting && { waiting: returned.waiting }),
        },
      });
      return running;
    }
    // The record names this batch's command only: the earlier batches' all succeeded.
    const { commandCount: _, ...earlier } = giveUp(claimed, sent.refused);
    await save(deps, {
      ...earlier,
      ...recordedCommands(sent.commandIds, claimed.phase),
      standby: { instanceIds: present, stage: 'deploying' },
    });
    deps.logger.info('standby batch deploying', {
      group: deployment.group,
      deploymentId,
      phase: claimed.phase,
      instanceIds: ready,
      commandIds: sent.commandIds,
    });
    if (sent.error) throw sent.error;
    return { outcome: 'advanced', deploymentId, phase: claimed.phase };
  }

  if (batch.stage === 'deploying') {
    const states = await commandStates(
      deps,
      deployment.commands.filter((command) => command.phase === deployment.phase),
    );
    const verdict = phaseVerdict(deployment, statusesOf(states));
    if (verdict.kind === 'running') return running;
    const step = await claimTransition(deps, deployment, record);
    if (step === undefined) return { outcome: 'claimed-elsewhere', deploymentId };
    const claimed = { ...deployment, step, standby: { instanceIds: present, stage: 'restoring' as const } };
    const finished = { ...record, claimedSteps: [...record.claimedSteps, step] };
    if (verdict.kind !== 'succeeded') {
      const commandIds = verdict.kind === 'failed' ? verdict.commandIds : [];
      await fail(deps, group, claimed, await failuresOf(deps, claimed, commandIds), finished);
      await returnStraysNow(deps, deployment.group);
      return { outcome: 'advanced', deploymentId, phase: 'failed' };
    }
    let sha = claimed.sha;
    if (claimed.phase === 'canary' && claimed.canary) {
      const canaryCommand = claimed.commands.find((command) => command.phase === 'canary');
      const stdout = canaryCommand
        ? ((await readInvocation(deps, canaryCommand.commandId, claimed.canary)).StandardOutputContent ?? '')
        : '';
      sha = resolvedSha(stdout);
      if (!sha) {
        const reason = `the canary's run succeeded but reported no commit SHA for ${claimed.requested}`;
        const failures = [
          {
            instanceId: claimed.canary,
            reason,
            ...(canaryCommand && { commandId: canaryCommand.commandId }),
          },
        ];
        await fail(deps, group, claimed, { failures, ran: [claimed.canary] }, finished);
        await returnStraysNow(deps, deployment.group);
        return { outcome: 'advanced', deploymentId, phase: 'failed' };
      }
    }
    const returned = await returnBatch(deps, view, present);
    await save(deps, {
      ...claimed,
      ...(sha && { sha }),
      standby: {
        instanceIds: present,
        stage: 'returning',
        ...(returned.waiting && { waiting: returned.waiting }),
      },
    });
    return { outcome: 'advanced', deploymentId, phase: claimed.phase };
  }

  // returning (or restoring, which only an ended deployment keeps: returnStrays)
  const inStandby = inState('Standby');
  if (inStandby.length > 0) {
    // Returning them did not fit within MaxSize before, or the invocation stopped before asking.
    const room = exitRoom(view.sizes, inStandby.length);
    if (room.take === 0) return stillWaiting();
    const step = await claimTransition(deps, deployment, record);
    if (step === undefined) return { outcome: 'claimed-elsewhere', deploymentId };
    const returned = await returnBatch(deps, view, present);
    await save(deps, {
      ...deployment,
      step,
      standby: {
        instanceIds: present,
        stage: 'returning',
        ...(returned.waiting && { waiting: returned.waiting }),
      },
    });
    return running;
  }
  // Pending on the way back: the next batch leaves only once this one is InService and healthy
  // in Auto Scaling again, and, behind a load balancer, its health check grace period after
  // ExitStandby (when the record was last saved) has passed: its targets' own health is not read.
  if (present.some((id) => view.states.get(id) !== 'InService' || view.unhealthy.has(id))) {
    return stillWaiting();
  }
  const graceEnds = Date.parse(deployment.updatedAt) + (view.balancedGraceMs ?? 0);
  if (present.length > 0 && deps.clock.now() < graceEnds) return stillWaiting();
  return nextStandbyBatch(deps, group, record, deployment, view, nudged);
}

/** The deployment with instances it gives up on added to `skipped` and `failures`. */
function giveUp(deployment: Deployment, refused: readonly DeployFailure[]): Deployment {
  if (refused.length === 0) return deployment;
  return {
    ...deployment,
    skipped: [...(deployment.skipped ?? []), ...refused.map((failure) => failure.instanceId)],
    ...withFailures(deployment, refused),
  };
}

/** A deployment that still waits at the step a nudge named: nudged again. */
async function waitingStill(
  deps: Deps,
  deployment: Deployment,
  nudged: Nudge | undefined,
): Promise<AdvanceOutcome> {
  if (nudged) await nudgeAgain(deps, deployment, nudged);
  return { outcome: 'running', deploymentId: deployment.id };
}

/**
 * The next batch of a `standby` deployment: InService instances with an online agent that no
 * command of the deployment reached (the rest, and instances that joined meanwhile) and that
 * it did not give up on, as many as the rate control and MinSize allow; with none left, the
 * release is promoted. At MinSize the deployment waits, its record saying why, and its nudges
 * and every reconcile look again. Giving up on more than MAX_SKIPPED fails it.
 */
async function nextStandbyBatch(
  deps: Deps,
  group: GroupConfig,
  record: GroupRecord,
  deployment: Deployment,
  view: GroupView,
  nudged: Nudge | undefined,
): Promise<AdvanceOutcome> {
  const deploymentId = deployment.id;
  const sha = deployment.sha;
  if (!sha) {
    // The canary is back in service (or gone) without a run that resolved the revision.
    const step = await claimTransition(deps, deployment, record);
    if (step === undefined) return { outcome: 'claimed-elsewhere', deploymentId };
    const reason = `the canary could not be deployed out of service: it left the group, EnterStandby was refused, or its agent could not be reached (${deployment.standby?.waiting ?? 'see the log'})`;
    const { standby: _, ...ended } = { ...deployment, step };
    // A canary given up on is already named in the failures, with SSM's or Auto Scaling's words.
    const named = deployment.failures.some((failure) => failure.instanceId === deployment.canary);
    await fail(
      deps,
      group,
      ended,
      { failures: named ? [] : [{ instanceId: deployment.canary ?? 'none', reason }], ran: [] },
      { ...record, claimedSteps: [...record.claimedSteps, step] },
    );
    return { outcome: 'advanced', deploymentId, phase: 'failed' };
  }
  if ((deployment.skipped?.length ?? 0) > MAX_SKIPPED) {
    // So many refusals point at the group or the role, not at instances: stop and say so.
    const step = await claimTransition(deps, deployment, record);
    if (step === undefined) return { outcome: 'claimed-elsewhere', deploymentId };
    const { standby: _, ...ended } = { ...deployment, step };
    const reason = `the deployment gave up on ${deployment.skipped?.length} instances (more than ${MAX_SKIPPED}): SendCommand or EnterStandby refused them; the release stays`;
    await fail(
      deps,
      group,
      ended,
      { failures: [{ instanceId: 'none', reason }], ran: [] },
      { ...record, claimedSteps: [...record.claimedSteps, step] },
    );
    return { outcome: 'advanced', deploymentId, phase: 'failed' };
  }
  if (nudged && deployment.standby?.waiting !== undefined) {
    // Room first on a nudge: each of a wait's nudges would otherwise page SSM's command history.
    // Reconcile's looks still read it, so a deployment with no instance left still ends.
    const room = enterRoom(view.sizes, 1, 1);
    if ('waiting' in room && room.waiting === deployment.standby.waiting)
      return waitingStill(deps, deployment, nudged);
  }
  // Who the deployment reached: its commands in SSM's history (the record names the last batch's
  // only), the canary, and those it gave up on (left to drift repair, never taken out again).
  const history = await commandHistory(deps, deployment);
  // The last batch's command may not be listed yet: the record names it.
  const recorded = await commandStates(deps, deployment.commands);
  const sent = new Set([...history, ...recorded.values()].flatMap((state) => state.instanceIds));
  if (deployment.canary) sent.add(deployment.canary);
  for (const id of deployment.skipped ?? []) sent.add(id);
  const inService = inServiceOf(view);
  const repairing = deployment.driftRepair;
  const waiting = inService.filter((id) => !sent.has(id) && (!repairing || repairing.includes(id)));
  const targets = (await onlineOf(deps, deployment.group, waiting)).sort();
  const room =
    targets.length === 0
      ? undefined
      : enterRoom(
          view.sizes,
          targets.length,
          concurrencyLimit(deps.config.redeployMaxConcurrency, inService.length),
        );
  if (room && 'waiting' in room && deployment.standby?.waiting === room.waiting) {
    return waitingStill(deps, deployment, nudged);
  }

  const step = await claimTransition(deps, deployment, record);
  if (step === undefined) return { outcome: 'claimed-elsewhere', deploymentId };
  const claimed = { ...deployment, step, sha };
  if (!room) {
    const { standby: _, ...done } = claimed;
    const finished = { ...record, claimedSteps: [...record.claimedSteps, step] };
    if (repairing) {
      // The release did not change: a repair only brought instances back to it.
      await end(
        deps,
        { ...done, phase: 'promoted', updatedAt: new Date(deps.clock.now()).toISOString() },
        finished,
      );
      deps.logger.info('drift repaired through Standby', { group: deployment.group, deploymentId, sha });
    } else {
      await promote(deps, done, step, finished);
    }
    return { outcome: 'advanced', deploymentId, phase: 'promoted' };
  }
  const phase = claimed.phase === 'canary' ? 'rest' : claimed.phase;
  if ('waiting' in room) {
    deps.logger.warn('standby deployment waits on the group sizes', {
      group: deployment.group,
      deploymentId,
      waiting: room.waiting,
    });
    await save(deps, {
      ...claimed,
      phase,
      standby: { instanceIds: [], stage: 'entering', waiting: room.waiting },
    });
    return { outcome: 'running', deploymentId };
  }
  const chosen = targets.slice(0, room.take);
  // The intent first: a batch chosen and not yet asked to leave is asked again by the next advance.
  await save(deps, { ...claimed, phase, standby: { instanceIds: chosen, stage: 'entering' } });
  try {
    await enterStandby(deps, deployment.group, chosen);
  } catch (error) {
    // Refused (the group scaled in meanwhile, an instance changed state): the next advance asks again.
    if (!isValidationError(error)) throw error;
    deps.logger.warn('standby batch could not enter Standby yet', {
      group: deployment.group,
      deploymentId,
      instanceIds: chosen,
      error: (error as Error).message,
    });
    return { outcome: 'running', deploymentId };
  }
  deps.logger.info('standby batch entering', {
    group: deployment.group,
    deploymentId,
    phase,
    instanceIds: chosen,
  });
  return { outcome: 'advanced', deploymentId, phase };
}

/** Sends a batch in Standby its command: the canary the requested revision with migrations, the rest the SHA. */
async function sendStandbyBatch(
  deps: Deps,
  group: GroupConfig,
  deployment: Deployment,
  ready: readonly string[],
): Promise<Sent> {
  if (ready.length === 0) return { commandIds: [], refused: [] };
  if (deployment.phase !== 'canary') {
    const sha = deployment.sha;
    if (!sha) throw new Error(`deployment ${deployment.id} is past its canary without a SHA`);
    // A repair's commands read as reconcile's own, so an instance that cannot deploy the release
    // is repaired again only after reconcile's retry window, as in place.
    const comment = deployment.driftRepair ? DRIFT_COMMENT : undefined;
    return sendBatches(deps, group, deployment, 'rest', ready, sha, comment);
  }
  try {
    const commandId = await sendSelfDeploy(
      deps,
      ready,
      {
        ...deployParameters(group, { revision: deployment.requested }),
        migrate: 'true',
        autoScalingGroupName: deployment.group,
      },
      deploymentComment(deployment.id, 'canary'),
    );
    return { commandIds: [commandId], refused: [] };
  } catch (error) {
    // An agent that cannot be reached is no reason to send again: the canary returns, and the deployment fails.
    if (isAgentNotReady(error)) return { commandIds: [], refused: ready.map((id) => refusal(id, error)) };
    return { commandIds: [], refused: [], error: error as Error };
  }
}

/** Asks ExitStandby for the batch's instances still in Standby, as many as MaxSize lets back. */
async function returnBatch(
  deps: Deps,
  view: GroupView,
  instanceIds: readonly string[],
): Promise<{ readonly returned: readonly string[]; readonly waiting?: string }> {
  const inStandby = instanceIds.filter((id) => view.states.get(id) === 'Standby');
  const room = exitRoom(view.sizes, inStandby.length);
  const returned = inStandby.slice(0, room.take);
  try {
    if (returned.length > 0) await exitStandby(deps, view.sizes.name, returned);
  } catch (error) {
    // Refused (the sizes changed since they were read, another execution returned them first):
    // the states say which are out of Standby now, not the error; the rest the next look returns.
    if (!isValidationError(error)) throw error;
    const now = await viewGroup(deps, view.sizes.name);
    const back = returned.filter((id) => now.states.get(id) !== 'Standby');
    const still = back.length < returned.length;
    return { returned: back, ...(still && { waiting: (error as Error).message }) };
  }
  if (room.waiting) {
    deps.logger.warn('standby instances wait to return', {
      group: view.sizes.name,
      instanceIds: inStandby.slice(room.take),
      waiting: room.waiting,
    });
  }
  return { returned, ...(room.waiting && { waiting: room.waiting }) };
}

/**
 * Brings back what an ended deployment left in Standby (a failed batch, once its restore
 * commands are final): never lose an instance in Standby, a capacity leak nobody sees. Called
 * by every status event and reconcile run of a group with no deployment in flight.
 */
async function returnStrays(deps: Deps, last: Deployment, slot: LastSlot): Promise<AdvanceOutcome> {
  const batch = last.standby;
  if (!batch) return { outcome: 'none' };
  const restores = last.commands.filter((command) => command.phase === 'failed');
  const restoring = [...(await commandStates(deps, restores)).values()].some(
    (state) => !isTerminalStatus(state.status),
  );
  if (batch.stage === 'restoring' && restoring) return { outcome: 'running', deploymentId: last.id };
  const view = await viewGroup(deps, last.group);
  const present = batch.instanceIds.filter((id) => view.states.get(id) === 'Standby');
  const returned = await returnBatch(deps, view, present);
  const left = present.filter((id) => !returned.returned.includes(id));
  const { standby: _, ...rest } = last;
  // Another execution may have returned them and a newer deployment ended since: its record stays.
  const fresh = await readGroupRecord(deps, last.group, true);
  const now = slot === 'last-repair' ? fresh.lastRepair : fresh.lastDeployment;
  if (now?.id !== last.id || !now.standby) {
    return left.length > 0 ? { outcome: 'running', deploymentId: last.id } : { outcome: 'none' };
  }
  await writeRecord(deps, last.group, slot, {
    ...rest,
    ...(left.length > 0 && { standby: { instanceIds: left, stage: 'returning', waiting: returned.waiting } }),
  } satisfies Deployment);
  deps.logger.info('standby instances of an ended deployment returned', {
    group: last.group,
    deploymentId: last.id,
    returned: returned.returned,
    ...(left.length > 0 && { left }),
  });
  return left.length > 0 ? { outcome: 'running', deploymentId: last.id } : { outcome: 'none' };
}

/** Returns a failed deployment's batch at once when it needed no restore (nothing else would come to do it soon). */
async function returnStraysNow(deps: Deps, groupName: string): Promise<void> {
  const stray = strayRecord(await readGroupRecord(deps, groupName, true));
  if (stray) await returnStrays(deps, stray.last, stray.slot);
}

/**
 * The ended deployment with instances in Standby and the slot it was read from: what a failed
 * deployment left first, then what a failed repair did. A repair the previous version recorded
 * is in `last-deployment`, so the slot is where it was found, not where a repair goes now.
 */
function strayRecord(record: GroupRecord): { last: Deployment; slot: LastSlot } | undefined {
  if (record.lastDeployment?.standby) return { last: record.lastDeployment, slot: 'last-deployment' };
  if (record.lastRepair?.standby) return { last: record.lastRepair, slot: 'last-repair' };
  return undefined;
}

/** Auto Scaling's refusal of a call the group's sizes or an instance's state do not allow. */
function isValidationError(error: unknown): boolean {
  return (error as Error | undefined)?.name === 'ValidationError';
}

/** Writes the deployment in flight, stamped now, and nudges its step when it waits on Auto Scaling. */
async function save(deps: Deps, deployment: Deployment): Promise<void> {
  await writeRecord(deps, deployment.group, 'deployment', {
    ...deployment,
    updatedAt: new Date(deps.clock.now()).toISOString(),
  } satisfies Deployment);
  await nudgeStep(deps, deployment);
}

/** Each command's status and instances (ListCommands by id); a command SSM does not list yet has no status. */
async function commandStates(
  deps: Deps,
  commands: readonly { readonly commandId: string }[],
): Promise<Map<string, CommandState>> {
  const read = await mapLimited(commands, READ_CONCURRENCY, async ({ commandId }) => {
    const output = await deps.clients.ssm.send(new ListCommandsCommand({ CommandId: commandId }));
    const command = output.Commands?.[0];
    return [commandId, { status: command?.Status, instanceIds: command?.InstanceIds ?? [] }] as const;
  });
  return new Map(read);
}

/**
 * The current phase's commands and the verdict on them: from the record when it names them all,
 * else from SSM's command history (a phase sent more than MAX_RECORDED_COMMANDS), where one
 * not listed yet keeps the phase running.
 */
async function phaseStates(
  deps: Deps,
  deployment: Deployment,
): Promise<{ states: Map<string, CommandState>; verdict: PhaseVerdict }> {
  const recorded = deployment.commands.filter((command) => command.phase === deployment.phase);
  if ((deployment.commandCount ?? 0) <= recorded.length) {
    const states = await commandStates(deps, recorded);
    return { states, verdict: phaseVerdict(deployment, statusesOf(states)) };
  }
  const listed = (await commandHistory(deps, deployment)).filter(
    (command) => command.role === deployment.phase,
  );
  const states = new Map(listed.map((command) => [command.commandId, command] as const));
  if (listed.length < (deployment.commandCount ?? 0)) return { states, verdict: { kind: 'running' } };
  const commands = listed.map(({ commandId }) => ({ commandId, phase: deployment.phase }));
  return { states, verdict: phaseVerdict({ phase: deployment.phase, commands }, statusesOf(states)) };
}

/** A command of a deployment as SSM's command history lists it. */
interface HistoryCommand extends CommandState {
  readonly commandId: string;
  readonly role: DeploymentCommandRole;
  readonly requestedAt?: Date;
}

/** How far SSM's clock and this one may differ: history is read this much wider at each end. */
const CLOCK_MARGIN_MS = 60_000;

/**
 * Every command the deployment sent, newest first: SelfDeploy commands between its start and
 * (ended) its last update whose Comment names it, or a repair's drift commands to the instances
 * it repaired. One ListCommands per 50 SelfDeploy commands of the account in that time.
 */
async function commandHistory(deps: Deps, deployment: Deployment): Promise<HistoryCommand[]> {
  const found: HistoryCommand[] = [];
  const ended = deployment.phase === 'promoted' || deployment.phase === 'failed';
  const repaired = new Set(deployment.driftRepair);
  const Filters: CommandFilter[] = [
    { key: 'DocumentName', value: deps.config.documentName },
    {
      key: 'InvokedAfter',
      value: new Date(Date.parse(deployment.requestedAt) - CLOCK_MARGIN_MS).toISOString(),
    },
  ];
  if (ended) {
    Filters.push({
      key: 'InvokedBefore',
      value: new Date(Date.parse(deployment.updatedAt) + CLOCK_MARGIN_MS).toISOString(),
    });
  }
  let NextToken: string | undefined;
  do {
    const page = await deps.clients.ssm.send(
      new ListCommandsCommand({
        Filters,
        MaxResults: 50,
        NextToken,
      }),
    );
    for (const command of page.Commands ?? []) {
      // A repair's commands read as reconcile's own (DRIFT_COMMENT), as do in-place groups' drift
      // commands and later repairs': only those to the instances it repaired are its own.
      const named =
        deployment.driftRepair && command.Comment === DRIFT_COMMENT
          ? (command.InstanceIds ?? []).some((id) => repaired.has(id))
            ? { deploymentId: deployment.id, role: 'rest' as const }
            : undefined
          : deploymentOfComment(command.Comment);
      if (named?.deploymentId !== deployment.id || !command.CommandId) continue;
      found.push({
        commandId: command.CommandId,
        role: named.role,
        status: command.Status,
        instanceIds: command.InstanceIds ?? [],
        ...(command.RequestedDateTime && { requestedAt: command.RequestedDateTime }),
      });
    }
    NextToken = page.NextToken;
  } while (NextToken);
  return found.sort((a, b) => (b.requestedAt?.getTime() ?? 0) - (a.requestedAt?.getTime() ?? 0));
}

/** A phase's commands as the record keeps them: the first MAX_RECORDED_COMMANDS, and how many there were past that. */
function recordedCommands(
  commandIds: readonly string[],
  phase: Deployment['phase'],
): Pick<Deployment, 'commands' | 'commandCount'> {
  return {
    commands: commandIds.slice(0, MAX_RECORDED_COMMANDS).map((commandId) => ({ commandId, phase })),
    ...(commandIds.length > MAX_RECORDED_COMMANDS && { commandCount: commandIds.length }),
  };
}

/**
 * The deployment's failures with `more` added, all counted, MAX_RECORDED_FAILURES named: `more`
 * after the earlier ones, or (`ending`: the failures that end the deployment, its cause) before them.
 */
function withFailures(
  deployment: Deployment,
  more: readonly DeployFailure[],
  ending = false,
): Pick<Deployment, 'failures' | 'failureCount'> {
  const total = (deployment.failureCount ?? deployment.failures.length) + more.length;
  const ordered = ending ? [...more, ...deployment.failures] : [...deployment.failures, ...more];
  const failures = ordered.slice(0, MAX_RECORDED_FAILURES);
  return { failures, ...(total > failures.length && { failureCount: total }) };
}

function statusesOf(states: ReadonlyMap<string, CommandState>): Map<string, string | undefined> {
  return new Map([...states].map(([commandId, state]) => [commandId, state.status]));
}

/** The canary command of a deployment, found by its Comment among the canary's SelfDeploy commands. */
async function findCanaryCommand(deps: Deps, deployment: Deployment): Promise<string | undefined> {
  if (!deployment.canary) return undefined;
  const output = await deps.clients.ssm.send(
    new ListCommandsCommand({
      InstanceId: deployment.canary,
      Filters: [
        { key: 'DocumentName', value: deps.config.documentName },
        { key: 'InvokedAfter', value: new Date(Date.parse(deployment.requestedAt) - 60_000).toISOString() },
      ],
    }),
  );
  return output.Commands?.find((command) => {
    const named = deploymentOfComment(command.Comment);
    return named?.deploymentId === deployment.id && named.role === 'canary';
  })?.CommandId;
}

/** Claims the deployment's next transition; undefined when another execution has it. */
async function claimTransition(
  deps: Deps,
  deployment: Deployment,
  record: GroupRecord,
): Promise<number | undefined> {
  const above = record.claimedSteps.filter((step) => step > deployment.step);
  const pending = above.length > 0 ? await readClaim(deps, deployment.group, Math.max(...above)) : undefined;
  const step = nextClaim(deployment, record.claimedSteps, pending);
  if (step === undefined) return undefined;
  const claim = { deploymentId: deployment.id, at: new Date(deps.clock.now()).toISOString() };
  return (await writeRecord(deps, deployment.group, `step-${step}`, claim, true)) ? step : undefined;
}

/** Who holds a transition's claim, and since when. */
async function readClaim(deps: Deps, groupName: string, step: number) {
  try {
    const { Parameter } = await deps.clients.ssm.send(
      new GetParameterCommand({ Name: `${groupPath(deps.config.releasePath, groupName)}/step-${step}` }),
    );
    const value: unknown = JSON.parse(Parameter?.Value ?? '{}');
    const deploymentId =
      typeof value === 'object' &&
      value !== null &&
      'deploymentId' in value &&
      typeof value.deploymentId === 'string'
        ? value.deploymentId
        : undefined;
    return { deploymentId, ageMs: deps.clock.now() - (Parameter?.LastModifiedDate?.getTime() ?? 0) };
  } catch (error) {
    // Deleted between the read of the record and now: whoever held it is done with it.
    if (error instanceof ParameterNotFound)
      return { deploymentId: undefined, ageMs: Number.POSITIVE_INFINITY };
    throw error;
  }
}

/** The group's InService instances with an online agent that the deployment has not sent to. */
async function onlineTargets(deps: Deps, groupName: string, sent: ReadonlySet<string>): Promise<string[]> {
  return onlineOf(
    deps,
    groupName,
    (await inServiceInstances(deps, groupName)).filter((id) => !sent.has(id)),
  );
}

/** Those of `waiting` whose SSM agent is online; the others are logged as skipped. */
async function onlineOf(deps: Deps, groupName: string, waiting: readonly string[]): Promise<string[]> {
  if (waiting.length === 0) return [];
  const agents = await agentStatuses(deps, waiting);
  const offline = waiting.filter((id) => agents.get(id) !== 'Online');
  if (offline.length > 0) {
    // Sending would only wait out the delivery timeout and fail the deployment for an absent
    // agent; they show as drift, and reconcile brings them to the release when they are back.
    deps.logger.warn('deployment skips instances whose SSM agent is not online', {
      group: groupName,
      instanceIds: offline,
    });
  }
  return waiting.filter((id) => agents.get(id) === 'Online');
}

/** Sends `phase` of the deployment (the resolved SHA, no migrations) and records the commands. */
async function sendPhase(
  deps: Deps,
  group: GroupConfig,
  deployment: Deployment & { sha: string },
  phase: 'rest' | 'joiners',
  targets: readonly string[],
): Promise<void> {
  const sent = await sendBatches(deps, group, deployment, phase, targets, deployment.sha);
  // Whatever was not sent (an error mid-way) is InService and unsent: the joiners phase takes it.
  // The record names this phase's commands only: the earlier phase's all succeeded.
  const { commandCount: _, ...earlier } = deployment;
  await writeRecord(deps, deployment.group, 'deployment', {
    ...earlier,
    phase,
    ...recordedCommands(sent.commandIds, phase),
    updatedAt: new Date(deps.clock.now()).toISOString(),
  } satisfies Deployment);
  deps.logger.info(`deployment ${phase} started`, {
    group: deployment.group,
    deploymentId: deployment.id,
    sha: deployment.sha,
    instances: targets.length,
    commandIds: sent.commandIds,
  });
  if (sent.error) throw sent.error;
}

/** What a send did: the commands that went out, the instances SSM refused (and why), an error that stopped it. */
interface Sent {
  readonly commandIds: string[];
  readonly refused: DeployFailure[];
  readonly error?: Error;
}

/** Sends one command per ≤ 50 instances with the rate controls; an error stops the sending and is handed back. */
async function sendBatches(
  deps: Deps,
  group: GroupConfig,
  deployment: Deployment,
  role: DeploymentCommandRole,
  targets: readonly string[],
  revision: string,
  comment = deploymentComment(deployment.id, role),
): Promise<Sent> {
  const commandIds: string[] = [];
  const refused: DeployFailure[] = [];
  const error = await sendInBatches(deps, group, deployment.group, targets, revision, comment, {
    sent: (_, commandId) => commandIds.push(commandId),
    refused: (batch, error) => {
      // Terminated or deregistered since it was listed: reconcile handles it if it comes back.
      refused.push(...batch.map((instanceId) => refusal(instanceId, error)));
      deps.logger.warn('deployment could not send to instances', {
        group: deployment.group,
        deploymentId: deployment.id,
        role,
        instanceIds: batch,
        error: error.message,
      });
    },
  });
  return { commandIds, refused, ...(error && { error }) };
}

/**
 * Sends the group's deploy of `revision` to `targets`, one command per ≤ 50 instances with the
 * redeploy rate controls, telling `on` of each batch sent or refused (an agent SSM will not
 * send to); any other error stops the sending and is handed back.
 */
export async function sendInBatches(
  deps: Deps,
  group: GroupConfig,
  groupName: string,
  targets: readonly string[],
  revision: string,
  comment: string,
  on: {
    readonly sent: (batch: string[], commandId: string) => void;
    readonly refused: (batch: string[], error: Error) => void;
  },
): Promise<Error | undefined> {
  for (const batch of chunk(targets, MAX_INSTANCES_PER_COMMAND)) {
    let commandId: string;
    try {
      commandId = await sendSelfDeploy(
        deps,
        batch,
        // The group names the command so that its completion can log and tag its instances.
        { ...deployParameters(group, { revision }), autoScalingGroupName: groupName },
        comment,
        { maxConcurrency: deps.config.redeployMaxConcurrency, maxErrors: deps.config.redeployMaxErrors },
      );
    } catch (error) {
      if (!isAgentNotReady(error)) return error as Error;
      on.refused(batch, error as Error);
      continue;
    }
    on.sent(batch, commandId);
  }
  return undefined;
}

/** An instance SSM would not send to (its agent gone, or the role may not reach it), as a failure. */
function refusal(instanceId: string, error: unknown): DeployFailure {
  const said = `SendCommand refused it (${(error as Error).message})`.slice(0, 150);
  return { instanceId, reason: `${said}: returned unchanged, left to drift repair` };
}

/** Why a phase failed: per instance, and which instances ran the failed revision (to restore). */
interface PhaseFailure {
  readonly failures: readonly DeployFailure[];
  readonly ran: readonly string[];
}

/** Why each failed instance of the failed commands failed, with its output in the log. */
async function failuresOf(
  deps: Deps,
  deployment: Deployment,
  commandIds: readonly string[],
): Promise<PhaseFailure> {
  const failed: { commandId: string; instanceId: string; status?: string; statusDetails?: string }[] = [];
  for (const commandId of commandIds) {
    const output = await deps.clients.ssm.send(new ListCommandInvocationsCommand({ CommandId: commandId }));
    for (const invocation of output.CommandInvocations ?? []) {
      if (invocation.InstanceId && invocation.Status !== 'Success') {
        failed.push({
          commandId,
          instanceId: invocation.InstanceId,
          ...(invocation.Status && { status: invocation.Status }),
          ...(invocation.StatusDetails && { statusDetails: invocation.StatusDetails }),
        });
      }
    }
  }
  // A stopped command (MaxErrors reached) lists the instances it never ran on as well: the
  // runs that failed come first, and their output is what the operator needs.
  failed.sort((a, b) => Number(a.status !== 'Failed') - Number(b.status !== 'Failed'));
  if (failed.length === 0) {
    const instanceId = deployment.phase === 'canary' ? (deployment.canary ?? 'unknown') : 'unknown';
    return {
      failures: [
        { instanceId, reason: `command ${commandIds.join(', ')} ended without a failed run on record` },
      ],
      ran: [],
    };
  }
  // Instances a stopped command never ran on still run the release: only the others need it back.
  const ran = failed
    .filter((run) => run.status === 'Failed' || run.status === 'TimedOut')
    .map((run) => run.instanceId);
  const failures = await mapLimited(failed, READ_CONCURRENCY, async (run, index): Promise<DeployFailure> => {
    if (index >= FAILED_RUNS_READ) {
      return {
        instanceId: run.instanceId,
        reason: [run.status, run.statusDetails].filter(Boolean).join(': '),
      };
    }
    const invocation = await readInvocation(deps, run.commandId, run.instanceId);
    const failure = failureOf(run.instanceId, run.commandId, {
      status: invocation.Status ?? run.status,
      statusDetails: invocation.StatusDetails ?? run.statusDetails,
      responseCode: invocation.ResponseCode,
      stdout: invocation.StandardOutputContent ?? '',
    });
    const { stdoutTail, stderrTail, fullOutput } = failureFields(
      deps,
      run.commandId,
      run.instanceId,
      invocation,
    );
    deps.logger.error('deploy failed', {
      group: deployment.group,
      deploymentId: deployment.id,
      instanceId: run.instanceId,
      sha: deployment.sha ?? deployment.requested,
      exitCode: failure.exitCode,
      reason: failure.reason,
      commandId: run.commandId,
      outputTail: stdoutTail,
      stderrTail,
      fullOutput,
    });
    return failure;
  });
  return { failures, ran };
}

/**
 * Ends a failed deployment: the release stays, the failed instances are sent the release's SHA
 * (when there is one) to bring them back, and the lock and claims go.
 */
async function fail(
  deps: Deps,
  group: GroupConfig,
  deployment: Deployment,
  { failures, ran }: PhaseFailure,
  record: GroupRecord,
): Promise<void> {
  const failed = [...new Set(ran)];
  let restore: string[] = [];
  // A repair's failed instances failed to deploy the release itself: sending it again restores nothing.
  if (deployment.baseline && failed.length > 0 && !deployment.driftRepair) {
    const sent = await sendBatches(deps, group, deployment, 'restore', failed, deployment.baseline);
    restore = sent.commandIds;
    if (sent.error) {
      deps.logger.error('could not send the failed instances back to the release', {
        group: deployment.group,
        deploymentId: deployment.id,
        error: sent.error.message,
      });
    }
  }
  // The record keeps the restore's commands (returnStrays waits on them) and the newest of the phase's.
  const { commandCount: _, ...current } = deployment;
  const ended: Deployment = {
    ...current,
    phase: 'failed',
    commands: [
      ...deployment.commands,
      ...restore.map((commandId) => ({ commandId, phase: 'failed' as const })),
    ].slice(-MAX_RECORDED_COMMANDS),
    ...withFailures(deployment, failures, true),
    updatedAt: new Date(deps.clock.now()).toISOString(),
  };
  await end(deps, ended, record);
  // A repair is reconcile's, not an operator's deploy: its failed runs are logged, as in place.
  if (!deployment.driftRepair) deps.metrics.record(MetricName.DeployFailed, deployment.group);
  deps.logger.error(`${deployment.kind} failed`, {
    group: deployment.group,
    deploymentId: deployment.id,
    requested: deployment.requested,
    ...(deployment.sha && { sha: deployment.sha }),
    phase: deployment.phase,
    failures: failures.length,
    firstFailure: failures[0],
    release: deployment.baseline ?? 'none (unchanged)',
    restoreCommandIds: restore,
  });
}

/** Ends a deployment whose every phase succeeded: the release becomes its SHA. */
async function promote(
  deps: Deps,
  deployment: Deployment & { sha: string },
  step: number,
  record: GroupRecord,
): Promise<void> {
  const now = new Date(deps.clock.now()).toISOString();
  const release = promotedRelease(deployment, deployment.sha, record.release, now);
  await writeRecord(deps, deployment.group, 'release', release);
  await end(deps, { ...deployment, step, phase: 'promoted', updatedAt: now }, record);
  deps.metrics.record(MetricName.DeploySucceeded, deployment.group);
  deps.logger.info(`${deployment.kind} promoted`, {
    group: deployment.group,
    deploymentId: deployment.id,
    sha: release.sha,
    ...(release.previous && { previous: release.previous }),
  });
}

/** A parameter that keeps an ended deployment. */
type LastSlot = 'last-deployment' | 'last-repair';

/** Where an ended deployment is kept: a repair apart, so it never replaces an operator's deployment's record. */
function lastSlot(deployment: Deployment): LastSlot {
  return deployment.driftRepair ? 'last-repair' : 'last-deployment';
}

/** Keeps the ended deployment as the last one, then frees the lock and the transition claims. */
async function end(deps: Deps, ended: Deployment, record: GroupRecord): Promise<void> {
  await writeRecord(deps, ended.group, lastSlot(ended), ended);
  const claims = [...new Set(record.claimedSteps)].map((step) => `step-${step}` as const);
  await deleteRecords(deps, ended.group, ['deployment', ...claims]);
}

/** How many runs logs shows at most. */
const LOG_RUNS = 20;
/** Characters of standard output and of standard error each run shows: the result line ends the first. */
const LOG_TAIL_CHARS = { stdout: 1_500, stderr: 500 };

/**
 * The output tails of the newest self-deploy runs: of one instance of the group, of one
 * deployment, or (neither named) of the deployment in flight or else the last one.
 */
export async function logs(deps: Deps, action: Action<'logs'>): Promise<OperatorAnswer> {
  requireManaged(deps, action.group);
  let runs: { instanceId: string; commandId: string; status: string; requestedAt?: Date }[];
  if (action.instanceId) {
    runs = await instanceRuns(deps, action.group, action.instanceId);
  } else {
    const record = await readGroupRecord(deps, action.group, true);
    const deployment = [record.deployment, record.lastDeployment, record.lastRepair].find(
      (candidate) => candidate && (action.deploymentId === undefined || candidate.id === action.deploymentId),
    );
    if (!deployment) {
      throw new ActionRefusedError(
        action.deploymentId
          ? `deployment ${action.deploymentId} is neither in flight nor the last one of group ${action.group}`
          : `group ${action.group} has had no deployment: name an instanceId`,
      );
    }
    runs = [];
    // SSM's history has every command of the deployment; the record names only the last few.
    for (const { commandId } of await commandHistory(deps, deployment)) {
      const output = await deps.clients.ssm.send(new ListCommandInvocationsCommand({ CommandId: commandId }));
      for (const invocation of output.CommandInvocations ?? []) {
        if (invocation.InstanceId) {
          runs.push({
            instanceId: invocation.InstanceId,
            commandId,
            status: invocation.Status ?? 'unknown',
            ...(invocation.RequestedDateTime && { requestedAt: invocation.RequestedDateTime }),
          });
        }
      }
      if (runs.length >= LOG_RUNS) break;
    }
  }
  const shown = await mapLimited(runs.slice(0, LOG_RUNS), READ_CONCURRENCY, async (run) => {
    const invocation = await readInvocation(deps, run.commandId, run.instanceId);
    const stdout = (invocation.StandardOutputContent ?? '').slice(-LOG_TAIL_CHARS.stdout);
    const stderr = (invocation.StandardErrorContent ?? '').slice(-LOG_TAIL_CHARS.stderr);
    const outputTail = stderr ? `${stdout}\n[stderr]\n${stderr}` : stdout;
    return {
      instanceId: run.instanceId,
      commandId: run.commandId,
      status: invocation.Status ?? run.status,
      ...(run.requestedAt && { requestedAt: run.requestedAt.toISOString() }),
      outputTail,
    };
  });
  return { action: 'logs', group: action.group, runs: shown };
}

/** An instance's newest SelfDeploy runs, newest first; it must be the group's. */
async function instanceRuns(deps: Deps, groupName: string, instanceId: string) {
  const { AutoScalingInstances } = await deps.clients.autoScaling.send(
    new DescribeAutoScalingInstancesCommand({ InstanceIds: [instanceId] }),
  );
  const belongs = AutoScalingInstances?.[0]?.AutoScalingGroupName;
  if (belongs !== groupName) {
    throw new InvalidInputError(
      `instance ${instanceId} is not in group ${groupName}${belongs ? ` (it is in ${belongs})` : ''}`,
    );
  }
  const output = await deps.clients.ssm.send(
    new ListCommandInvocationsCommand({
      InstanceId: instanceId,
      Filters: [{ key: 'DocumentName', value: deps.config.documentName }],
      MaxResults: 50,
    }),
  );
  return (output.CommandInvocations ?? [])
    .flatMap((invocation) =>
      invocation.CommandId
        ? [
            {
              instanceId,
              commandId: invocation.CommandId,
              status: invocation.Status ?? 'unknown',
              ...(invocation.RequestedDateTime && { requestedAt: invocation.RequestedDateTime }),
            },
          ]
        : [],
    )
    .sort((a, b) => (b.requestedAt?.getTime() ?? 0) - (a.requestedAt?.getTime() ?? 0))
    .slice(0, 5);
}
