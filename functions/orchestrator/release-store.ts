import {
  DeleteParametersCommand,
  GetParametersByPathCommand,
  ParameterAlreadyExists,
  PutParameterCommand,
} from '@aws-sdk/client-ssm';
import type { Deployment, Release } from '../shared/operator-actions';
import type { Deps } from './deps';

/**
 * A group's release, pause and deployments live in Parameter Store under one path per group,
 * so one GetParametersByPath reads them all:
 *   <prefix>/<group>/release          the SHA the group runs (JSON Release)
 *   <prefix>/<group>/paused           present while launches go through without a deploy
 *   <prefix>/<group>/deployment       the deployment in flight; created with Overwrite=false,
 *                                     so it is also the one-per-group lock
 *   <prefix>/<group>/last-deployment  the last deployment that ended
 *   <prefix>/<group>/last-repair      the last drift repair through Standby that ended (apart,
 *                                     so a repair never replaces a failed deployment's record)
 *   <prefix>/<group>/step-<n>         claims of a deployment's transition n (create-if-absent)
 * A group's name may hold characters a parameter name may not: escapeGroupName maps it.
 */

/** How long a read of a group's parameters serves later reads in one execution environment. */
export const RELEASE_CACHE_MS = 10_000;

/** Parameter names allow only these characters (and `/` between levels). */
const PLAIN = /^[A-Za-z0-9.-]$/;

/**
 * A group name as one level of a parameter name, one-to-one: `_` is the escape character
 * (`__` for itself), every other character a name may not hold is `_` and 4 hex digits per
 * UTF-16 unit.
 */
function escapeGroupName(name: string): string {
  let escaped = '';
  for (const character of name) {
    if (PLAIN.test(character)) escaped += character;
    else if (character === '_') escaped += '__';
    else {
      for (let index = 0; index < character.length; index += 1) {
        escaped += `_${character.charCodeAt(index).toString(16).padStart(4, '0')}`;
      }
    }
  }
  return escaped;
}

/** The path all of one group's parameters live under. */
export function groupPath(prefix: string, group: string): string {
  return `${prefix}/${escapeGroupName(group)}`;
}

/** Everything Parameter Store holds about one group. */
export interface GroupRecord {
  readonly release?: Release;
  readonly paused?: { readonly since: string; readonly reason: string };
  readonly deployment?: Deployment;
  readonly lastDeployment?: Deployment;
  readonly lastRepair?: Deployment;
  /** Claimed transition numbers of the deployment in flight. */
  readonly claimedSteps: readonly number[];
}

/** A parameter selfdeploy reads holds what it does not expect: named, never guessed around. */
class ReleaseRecordError extends Error {
  public override name = 'ReleaseRecordError';
}

const cache = new Map<string, { readAt: number; record: Promise<GroupRecord> }>();

/** Forgets cached reads; after a write, and between tests. */
export function forgetReleaseCache(group?: string): void {
  if (group === undefined) cache.clear();
  else cache.delete(group);
}

/**
 * The group's record, read at most once per RELEASE_CACHE_MS per execution environment, so a
 * burst of launches costs a handful of reads. `fresh` reads anyway (deployments, actions).
 */
export function readGroupRecord(deps: Deps, group: string, fresh = false): Promise<GroupRecord> {
  const now = deps.clock.now();
  const cached = cache.get(group);
  if (!fresh && cached && now - cached.readAt < RELEASE_CACHE_MS) return cached.record;
  const record = readUncached(deps, group);
  cache.set(group, { readAt: now, record });
  record.catch(() => cache.delete(group));
  return record;
}

async function readUncached(deps: Deps, group: string): Promise<GroupRecord> {
  const path = groupPath(deps.config.releasePath, group);
  const values = new Map<string, string>();
  let NextToken: string | undefined;
  do {
    const page = await deps.clients.ssm.send(
      new GetParametersByPathCommand({ Path: path, Recursive: false, NextToken }),
    );
    for (const parameter of page.Parameters ?? []) {
      if (parameter.Name && parameter.Value !== undefined) {
        values.set(parameter.Name.slice(path.length + 1), parameter.Value);
      }
    }
    NextToken = page.NextToken;
  } while (NextToken);
  const json = <T>(name: string): T | undefined => {
    const value = values.get(name);
    if (value === undefined) return undefined;
    try {
      return JSON.parse(value) as T;
    } catch {
      throw new ReleaseRecordError(`parameter ${path}/${name} is not JSON: ${value.slice(0, 80)}`);
    }
  };
  const claimedSteps = [...values.keys()]
    .flatMap((name) => /^step-([0-9]+)$/.exec(name)?.[1] ?? [])
    .map(Number);
  const release = json<Release>('release');
  const paused = json<{ since: string; reason: string }>('paused');
  const deployment = json<Deployment>('deployment');
  const lastDeployment = json<Deployment>('last-deployment');
  const lastRepair = json<Deployment>('last-repair');
  return {
    ...(release && { release }),
    ...(paused && { paused }),
    ...(deployment && { deployment }),
    ...(lastDeployment && { lastDeployment }),
    ...(lastRepair && { lastRepair }),
    claimedSteps,
  };
}

export type RecordName =
  | 'release'
  | 'paused'
  | 'deployment'
  | 'last-deployment'
  | 'last-repair'
  | `step-${number}`;

/**
 * Writes one of the group's parameters. With `create`, only if it does not exist yet:
 * false when it does (someone else created it first), which is how locks and claims work.
 */
export async function writeRecord(
  deps: Deps,
  group: string,
  name: RecordName,
  value: unknown,
  create = false,
): Promise<boolean> {
  forgetReleaseCache(group);
  try {
    await deps.clients.ssm.send(
      new PutParameterCommand({
        Name: `${groupPath(deps.config.releasePath, group)}/${name}`,
        Value: JSON.stringify(value),
        Type: 'String',
        Overwrite: !create,
      }),
    );
    return true;
  } catch (error) {
    if (create && error instanceof ParameterAlreadyExists) return false;
    throw error;
  }
}

/** Deletes some of the group's parameters (those absent are no error). */
export async function deleteRecords(deps: Deps, group: string, names: readonly RecordName[]): Promise<void> {
  forgetReleaseCache(group);
  const path = groupPath(deps.config.releasePath, group);
  // DeleteParameters takes at most 10 names per call.
  for (let index = 0; index < names.length; index += 10) {
    await deps.clients.ssm.send(
      new DeleteParametersCommand({
        Names: names.slice(index, index + 10).map((name) => `${path}/${name}`),
      }),
    );
  }
}
