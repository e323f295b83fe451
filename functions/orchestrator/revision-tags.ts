import { CreateTagsCommand, paginateDescribeTags, type Tag } from '@aws-sdk/client-ec2';
import { LAST_DEPLOY_TAG, REVISION_TAG } from '../shared/deploy-tags';
import type { InstanceStatus } from '../shared/operator-actions';
import type { Deps } from './deps';
import { chunk } from './utilities';

/**
 * What a deploy left on each instance, as EC2 tags, so the EC2 console and `status` show it:
 *   selfdeploy:revision     the SHA the last successful deploy made live
 *   selfdeploy:last-deploy  `<success|failure> <exit code|-> <ISO time> <sha|->`
 * The time is the run's own (its command's request time), not the time of writing, so that a
 * result handled late (a duplicate or delayed status event, the reconciler repairing an old
 * command) is recognised as older than what the tags already record and never replaces it.
 * Written after the lifecycle action is completed: a tag that cannot be written is logged and
 * changes nothing else (the deploy's verdict is the lifecycle result, not the tag).
 */

/** CreateTags takes at most 1000 resource ids; AWS advises smaller batches. */
const RESOURCES_PER_CREATE = 200;
/** EC2 filters take at most 200 values each. */
const VALUES_PER_FILTER = 200;

/** One instance's finished deploy, as its tags record it. */
export interface DeployResult {
  readonly instanceId: string;
  readonly result: 'success' | 'failure';
  /** The script's exit code (SSM's ResponseCode); absent when unknown. */
  readonly exitCode?: number;
  /** The SHA the run deployed (on failure: the one it tried), when known. */
  readonly sha?: string;
  /** When the run's command was requested: orders results. A result without it is not written. */
  readonly requestedAt?: Date;
}

/** The last-deploy tag's value; at most 7 + 1 + 11 + 1 + 24 + 1 + 40 characters, well within EC2's 256. */
function lastDeployValue(deploy: Omit<DeployResult, 'requestedAt'>, at: string): string {
  return `${deploy.result} ${deploy.exitCode ?? '-'} ${at} ${deploy.sha ?? '-'}`;
}

/** Reads a last-deploy tag back; undefined when it is not one selfdeploy wrote. */
export function parseLastDeploy(value: string): InstanceStatus['lastDeploy'] {
  const match = /^(success|failure) (-?[0-9]+|-) (\S+) ([0-9a-f]{40}|-)$/.exec(value);
  if (!match) return undefined;
  const [, result, exitCode, at, sha] = match;
  return {
    result: result as 'success' | 'failure',
    ...(exitCode !== '-' && { exitCode: Number(exitCode) }),
    at: at as string,
    ...(sha !== '-' && { sha: sha as string }),
  };
}

/** The tags one result writes: both on success, only the last deploy on failure (the revision live did not change). */
function tagsFor(deploy: Omit<DeployResult, 'requestedAt'>, at: string): Tag[] {
  const tags = [{ Key: LAST_DEPLOY_TAG, Value: lastDeployValue(deploy, at) }];
  return deploy.result === 'success' && deploy.sha
    ? [{ Key: REVISION_TAG, Value: deploy.sha }, ...tags]
    : tags;
}

/**
 * The results that may be written: per instance the newest, and only when it is not older than
 * the last deploy its tags already record (a result of the same run is written again, which
 * changes nothing). Pure: `recorded` is each instance's last-deploy time as read.
 */
export function newestResults(
  results: readonly DeployResult[],
  recorded: ReadonlyMap<string, string | undefined>,
): (Omit<DeployResult, 'requestedAt'> & { at: string })[] {
  const newest = new Map<string, DeployResult & { requestedAt: Date }>();
  for (const deploy of results) {
    if (!deploy.requestedAt || Number.isNaN(deploy.requestedAt.getTime())) continue;
    const kept = newest.get(deploy.instanceId);
    if (!kept || deploy.requestedAt >= kept.requestedAt)
      newest.set(deploy.instanceId, { ...deploy, requestedAt: deploy.requestedAt });
  }
  return [...newest.values()].flatMap(({ requestedAt, ...deploy }) => {
    const at = requestedAt.toISOString();
    const last = recorded.get(deploy.instanceId);
    const lastTime = last === undefined ? Number.NaN : Date.parse(last);
    return !Number.isNaN(lastTime) && lastTime > requestedAt.getTime() ? [] : [{ ...deploy, at }];
  });
}

/**
 * Tags each instance with its deploy's result, unless its tags already record a newer run (one
 * DescribeTags per 200 instances reads them first): one CreateTags per set of tags shared by
 * several instances (the same SHA, result, exit code and run time). Never throws: a result whose
 * run time is unknown, or whose instance's tags cannot be read, is logged and not written (it
 * could be older than what they hold); a tag write that fails is logged, and when some instance
 * of a shared call is gone, the others are tagged one by one. Used after launch deploys and
 * after operator deployments alike.
 */
export async function tagDeployResults(deps: Deps, results: readonly DeployResult[]): Promise<void> {
  const untimed = results.filter((deploy) => !deploy.requestedAt).map((deploy) => deploy.instanceId);
  if (untimed.length > 0) {
    deps.logger.warn('not tagging deploy results whose run time is unknown', { instanceIds: untimed });
  }
  const instanceIds = [...new Set(results.map((deploy) => deploy.instanceId))];
  let recorded: Map<string, string | undefined>;
  try {
    const tags = await readDeployTags(deps, instanceIds);
    recorded = new Map(instanceIds.map((id) => [id, tags.get(id)?.lastDeploy?.at]));
  } catch (error) {
    logTagFailure(deps, instanceIds, error instanceof Error ? error : new Error(String(error)));
    return;
  }
  const writable = newestResults(results, recorded);
  // Those logged above as untimed, or written below; the rest are older than their tags.
  const accounted = new Set([...untimed, ...writable.map((deploy) => deploy.instanceId)]);
  const skipped = instanceIds.filter((id) => !accounted.has(id));
  if (skipped.length > 0) {
    deps.logger.info('not tagging results older than the last deploy the instances record', {
      instanceIds: skipped,
    });
  }
  const bySet = new Map<string, { tags: Tag[]; instanceIds: string[] }>();
  for (const deploy of writable) {
    const tags = tagsFor(deploy, deploy.at);
    const key = JSON.stringify(tags);
    const entry = bySet.get(key) ?? { tags, instanceIds: [] };
    if (!entry.instanceIds.includes(deploy.instanceId)) entry.instanceIds.push(deploy.instanceId);
    bySet.set(key, entry);
  }
  for (const { tags, instanceIds } of bySet.values()) {
    for (const ids of chunk(instanceIds, RESOURCES_PER_CREATE)) {
      const error = await createTags(deps, ids, tags);
      if (!error) continue;
      if (ids.length > 1 && error.name.startsWith('InvalidInstanceID')) {
        // One terminated instance fails the whole call; the others still deserve their tags.
        for (const id of ids) logTagFailure(deps, [id], await createTags(deps, [id], tags));
      } else logTagFailure(deps, ids, error);
    }
  }
}

async function createTags(deps: Deps, instanceIds: string[], tags: Tag[]): Promise<Error | undefined> {
  try {
    await deps.clients.ec2.send(new CreateTagsCommand({ Resources: instanceIds, Tags: tags }));
    return undefined;
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

function logTagFailure(deps: Deps, instanceIds: string[], error: Error | undefined): void {
  if (!error) return;
  deps.logger.warn('could not tag the deploy result; the lifecycle result stands', {
    instanceIds,
    errorName: error.name,
    errorMessage: error.message,
  });
}

/** Each instance's selfdeploy tags, by instance id (instances without any are absent). */
export async function readDeployTags(
  deps: Deps,
  instanceIds: readonly string[],
): Promise<Map<string, { sha?: string; lastDeploy?: InstanceStatus['lastDeploy'] }>> {
  const found = new Map<string, { sha?: string; lastDeploy?: InstanceStatus['lastDeploy'] }>();
  for (const ids of chunk(instanceIds, VALUES_PER_FILTER)) {
    const pages = paginateDescribeTags(
      { client: deps.clients.ec2 },
      {
        Filters: [
          { Name: 'resource-id', Values: ids },
          { Name: 'key', Values: [REVISION_TAG, LAST_DEPLOY_TAG] },
        ],
        MaxResults: 1000,
      },
    );
    for await (const page of pages) {
      for (const tag of page.Tags ?? []) {
        if (!tag.ResourceId || tag.Value === undefined) continue;
        const entry = found.get(tag.ResourceId) ?? {};
        if (tag.Key === REVISION_TAG) entry.sha = tag.Value;
        else if (tag.Key === LAST_DEPLOY_TAG) {
          const lastDeploy = parseLastDeploy(tag.Value);
          if (lastDeploy) entry.lastDeploy = lastDeploy;
        }
        found.set(tag.ResourceId, entry);
      }
    }
  }
  return found;
}
