import { ListCommandsCommand } from '@aws-sdk/client-ssm';
import { isTerminalStatus } from '../shared/event-patterns';
import type { Deployment } from '../shared/operator-actions';
import { agentStatuses } from './commands';
import type { GroupConfig } from './config';
import { DRIFT_COMMENT } from './decisions';
import {
  type AdvanceOutcome,
  advanceDeployment,
  inServiceOf,
  revisionTags,
  type StandbyRepair,
  sendInBatches,
  startStandbyRepair,
} from './deployments';
import type { Deps } from './deps';
import { readGroupRecord } from './release-store';
import { viewGroup } from './standby';

/** A drifted instance gets at most one drift repair for the same SHA in this window. */
const DRIFT_RETRY_MS = 60 * 60 * 1000;

/** What reconcile did about one group's release. */
export type ReleaseReconcile =
  | { readonly deployment: AdvanceOutcome }
  | { readonly drifted: number; readonly sent: readonly string[] }
  /** A `standby` group's drift repair: a deployment through Standby, or why none started. */
  | { readonly drifted: number; readonly repair: StandbyRepair }
  | { readonly skipped: string };

/**
 * The release half of reconcile, per managed group: a deployment in flight is moved on (its
 * status events may be lost, and it may outlive any invocation), and instances an ended one
 * left in Standby are returned; with none, InService instances whose `selfdeploy:revision` tag
 * names another SHA than the release are sent the release (a `standby` group's through
 * Standby, as a deployment). Each group is handled on its own; `failed` hears of a group that could not be.
 * Cost per group and run, with nothing to do: one GetParametersByPath, one
 * DescribeAutoScalingGroups and one DescribeTags per 200 InService instances.
 */
export async function reconcileReleases(
  deps: Deps,
  failed: (group: string, error: unknown) => void,
): Promise<Record<string, ReleaseReconcile>> {
  const outcomes: Record<string, ReleaseReconcile> = {};
  for (const [name, group] of Object.entries(deps.config.groups)) {
    try {
      outcomes[name] = await reconcileGroup(deps, name, group);
    } catch (error) {
      failed(name, error);
    }
  }
  return outcomes;
}

async function reconcileGroup(deps: Deps, name: string, group: GroupConfig): Promise<ReleaseReconcile> {
  const record = await readGroupRecord(deps, name, true);
  // A deployment in flight moves on; one that ended with instances in Standby returns them.
  if (record.deployment || record.lastDeployment?.standby || record.lastRepair?.standby) {
    return { deployment: await advanceDeployment(deps, name, record) };
  }
  if (group.follow !== 'release') return { skipped: 'the group follows its branch' };
  if (record.paused) return { skipped: 'paused' };
  const release = record.release;
  if (!release) return { skipped: 'no release yet' };

  // One look at the group serves the drift check and a standby group's repair alike.
  const view = await viewGroup(deps, name);
  const ids = inServiceOf(view);
  const tags = await revisionTags(deps, ids);
  // An instance without the tag is unknown, not drifted: sending to it on every run could
  // repeat forever where tags cannot be written.
  const drifted = ids.filter((id) => {
    const sha = tags.get(id);
    return sha !== undefined && sha !== release.sha;
  });
  if (drifted.length === 0) return { drifted: 0, sent: [] };

  const givenUp = recentlyGivenUp(deps, [record.lastRepair, record.lastDeployment]);
  const candidates = drifted.filter((id) => !givenUp.has(id));
  const busy = await busyInstances(deps, candidates, release.sha);
  const agents = await agentStatuses(deps, candidates);
  const targets = candidates.filter((id) => !busy.has(id) && agents.get(id) === 'Online');
  if (group.deployWith === 'standby') {
    // In place, a repair would restart the application where it serves: out of service instead.
    if (targets.length === 0) return { drifted: drifted.length, sent: [] };
    return { drifted: drifted.length, repair: await startStandbyRepair(deps, view, release.sha, targets) };
  }
  const sent: string[] = [];
  const error = await sendInBatches(deps, group, name, targets, release.sha, DRIFT_COMMENT, {
    sent: (batch, commandId) => {
      sent.push(...batch);
      deps.logger.info('drifted instances sent the release', {
        group: name,
        sha: release.sha,
        commandId,
        instanceIds: batch,
      });
    },
    refused: (batch, error) =>
      deps.logger.warn('could not send drifted instances the release', {
        group: name,
        instanceIds: batch,
        error: error.message,
      }),
  });
  if (error) throw error;
  return { drifted: drifted.length, sent };
}

/**
 * Instances the last repair or deployment gave up on (SendCommand or EnterStandby refused them)
 * and that ended within the retry window: a refusal leaves no command for busyInstances to find,
 * and a `standby` group's repair would take them out of service on every run only to be refused again.
 */
function recentlyGivenUp(deps: Deps, ended: readonly (Deployment | undefined)[]): Set<string> {
  const since = deps.clock.now() - DRIFT_RETRY_MS;
  return new Set(
    ended.flatMap((last) => (last?.skipped && Date.parse(last.updatedAt) > since ? last.skipped : [])),
  );
}

/**
 * Drifted instances to leave alone this run: a SelfDeploy run still going (a launch, a
 * deployment's straggler, an earlier repair), or a repair to this SHA within the retry
 * window, so an instance that cannot deploy the release is not sent it every few minutes.
 */
async function busyInstances(deps: Deps, instanceIds: readonly string[], sha: string): Promise<Set<string>> {
  const since = new Date(deps.clock.now() - DRIFT_RETRY_MS).toISOString();
  const busy = new Set<string>();
  for (const instanceId of instanceIds) {
    const output = await deps.clients.ssm.send(
      new ListCommandsCommand({
        InstanceId: instanceId,
        Filters: [
          { key: 'DocumentName', value: deps.config.documentName },
          { key: 'InvokedAfter', value: since },
        ],
      }),
    );
    const blocking = (output.Commands ?? []).some(
      (command) =>
        !isTerminalStatus(command.Status) ||
        (command.Comment === DRIFT_COMMENT && command.Parameters?.revision?.[0] === sha),
    );
    if (blocking) busy.add(instanceId);
  }
  return busy;
}
