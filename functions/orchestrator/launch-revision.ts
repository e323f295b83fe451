import { MetricName } from '../shared/metric-names';
import type { Release } from '../shared/operator-actions';
import type { GroupConfig } from './config';
import type { Overrides } from './decisions';
import type { Deps } from './deps';
import { completeAction, type LifecycleAction } from './lifecycle';
import { type GroupRecord, readGroupRecord, writeRecord } from './release-store';

/** What a launch deploys, and why. */
export interface LaunchRevision {
  /** The document's `revision`: an exact SHA, an override's revision, or empty for the branch head. */
  readonly revision: string;
  readonly source: 'release' | 'override' | 'branch';
  /** A revision override of the hook's metadata that the release took precedence over. */
  readonly ignoredOverride?: string;
}

/**
 * The revision a launch deploys. A group that follows its release gets the release's exact
 * SHA, even over a revision in the hook's NotificationMetadata: the release is what the group
 * was last proven to run, and a revision fixed in a hook would outlive every deploy and
 * rollback after it. A group with no release yet, or one that follows its branch, deploys the
 * override's revision when there is one, else the branch head (empty).
 */
export function launchRevision(
  group: Pick<GroupConfig, 'follow'>,
  record: Pick<GroupRecord, 'release'>,
  overrides: Overrides | undefined,
): LaunchRevision {
  const override = overrides?.revision || undefined;
  if (group.follow === 'release' && record.release) {
    return {
      revision: record.release.sha,
      source: 'release',
      ...(override !== undefined && override !== record.release.sha && { ignoredOverride: override }),
    };
  }
  return override ? { revision: override, source: 'override' } : { revision: '', source: 'branch' };
}

/**
 * While the group is paused, lets the instance into service without a deploy (it runs the
 * image's code): CONTINUE, logged and counted. The kill switch for when selfdeploy itself is
 * what is broken, so scale-outs still add capacity.
 */
export async function continuePaused(
  deps: Deps,
  action: LifecycleAction,
  paused: NonNullable<GroupRecord['paused']>,
): Promise<{ outcome: 'continued-without-deploy'; reason: string }> {
  const reason = `group paused since ${paused.since}: ${paused.reason}`;
  const keys = { instanceId: action.instanceId, group: action.group, reason };
  deps.logger.warn('launched without a deploy: the group is paused', keys);
  if ((await completeAction(deps, action, 'CONTINUE', keys)) === 'completed') {
    deps.metrics.record(MetricName.LaunchedWithoutDeploy, action.group);
  }
  return { outcome: 'continued-without-deploy', reason };
}

/**
 * Records `sha`, which a launch of a group without a release deployed from its branch and
 * which succeeded, as the group's first release, if it still has none: create-if-absent, so of
 * launches finishing together one wins and the others lose quietly. Never throws: a group
 * left without a release keeps deploying its branch, and its next successful launch tries again.
 */
export async function recordFirstRelease(deps: Deps, groupName: string, sha: string): Promise<void> {
  const keys = { group: groupName, sha };
  try {
    if ((await readGroupRecord(deps, groupName)).release) return;
    const release: Release = {
      sha,
      changedAt: new Date(deps.clock.now()).toISOString(),
      reason: 'first deploy',
    };
    if (await writeRecord(deps, groupName, 'release', release, true)) {
      deps.logger.info("first release recorded: the group's launches now deploy this SHA", keys);
    } else {
      deps.logger.info('the first release was recorded by another deploy', keys);
    }
  } catch (error) {
    deps.logger.warn('could not record the first release; the next successful launch tries again', {
      ...keys,
      errorName: (error as Error).name,
      errorMessage: (error as Error).message,
    });
  }
}
