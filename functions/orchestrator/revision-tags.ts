import { CreateTagsCommand, paginateDescribeTags, type Tag } from '@aws-sdk/client-ec2';
import { LAST_DEPLOY_TAG, REVISION_TAG } from '../shared/deploy-tags';
import type { InstanceStatus } from '../shared/operator-actions';
import type { Deps } from './deps';
import { chunk } from './utilities';

/**
 * What a deploy left on each instance, as EC2 tags, so the EC2 console and `status` show it:
 *   selfdeploy:revision     the SHA the last successful deploy made live
 *   selfdeploy:last-deploy  `<success|failure> <exit code|-> <ISO time> <sha|->`
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
}

/** The last-deploy tag's value; at most 7 + 1 + 11 + 1 + 24 + 1 + 40 characters, well within EC2's 256. */
function lastDeployValue(deploy: DeployResult, at: string): string {
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
function tagsFor(deploy: DeployResult, at: string): Tag[] {
  const tags = [{ Key: LAST_DEPLOY_TAG, Value: lastDeployValue(deploy, at) }];
  return deploy.result === 'success' && deploy.sha
    ? [{ Key: REVISION_TAG, Value: deploy.sha }, ...tags]
    : tags;
}

/**
 * Tags each instance with its deploy's result: one CreateTags per set of tags shared by several
 * instances (the same SHA, result and exit code, and one time for the whole call). Never throws:
 * a tag write that fails is logged, and when some instance of a shared call is gone, the others
 * are tagged one by one. Used after launch deploys and after operator deployments alike.
 */
export async function tagDeployResults(deps: Deps, results: readonly DeployResult[]): Promise<void> {
  const at = new Date(deps.clock.now()).toISOString();
  const bySet = new Map<string, { tags: Tag[]; instanceIds: string[] }>();
  for (const deploy of results) {
    const tags = tagsFor(deploy, at);
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
