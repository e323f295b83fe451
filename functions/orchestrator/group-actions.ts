import {
  type Instance,
  paginateDescribeAutoScalingGroups,
  paginateDescribeWarmPool,
} from '@aws-sdk/client-auto-scaling';
import type {
  AgentStatus,
  GroupStatus,
  InstanceStatus,
  OperatorAction,
  OperatorAnswer,
  Release,
} from '../shared/operator-actions';
import { agentStatuses } from './commands';
import { type GroupConfig, requireManagedGroup } from './config';
import type { Deps } from './deps';
import { deleteRecords, RELEASE_CACHE_MS, readGroupRecord, writeRecord } from './release-store';
import { readDeployTags } from './revision-tags';

type Action<Name extends OperatorAction['action']> = Extract<OperatorAction, { action: Name }>;

const AGENT_STATUSES: ReadonlySet<string> = new Set(['Online', 'ConnectionLost', 'Inactive']);

/**
 * The group's record read fresh (release, pause, deployment in flight, the last one, the last
 * drift repair) and every instance, warm pool included: lifecycle state, agent, the SHA and
 * last deploy its tags record, and drift. Costs one Parameter Store read, one
 * DescribeAutoScalingGroups (and a DescribeWarmPool when the group has one), one
 * DescribeInstanceInformation per 50 instances and one DescribeTags per 200.
 */
export async function status(deps: Deps, action: Action<'status'>): Promise<GroupStatus> {
  const group = requireManagedGroup(deps.config, action.group);
  const record = await readGroupRecord(deps, action.group, true);
  const instances = await groupInstances(deps, action.group);
  const ids = instances.flatMap((instance) => instance.InstanceId ?? []);
  const [agents, tags] = await Promise.all([agentStatuses(deps, ids), readDeployTags(deps, ids)]);
  const releaseSha = record.release?.sha;
  return {
    action: 'status',
    group: action.group,
    follow: group.follow,
    ...(record.release && { release: record.release }),
    ...(record.paused && { paused: record.paused }),
    ...(record.deployment && { deployment: record.deployment }),
    ...(record.lastDeployment && { lastDeployment: record.lastDeployment }),
    ...(record.lastRepair && { lastRepair: record.lastRepair }),
    instances: instances.flatMap((instance): InstanceStatus[] => {
      const instanceId = instance.InstanceId;
      if (!instanceId) return [];
      const tagged = tags.get(instanceId);
      const ping = agents.get(instanceId);
      return [
        {
          instanceId,
          lifecycleState: instance.LifecycleState ?? 'unknown',
          agent: ping && AGENT_STATUSES.has(ping) ? (ping as AgentStatus) : 'not registered',
          ...(tagged?.sha && { sha: tagged.sha }),
          ...(tagged?.lastDeploy && { lastDeploy: tagged.lastDeploy }),
          drift: isDrift(releaseSha, tagged?.sha),
        },
      ];
    }),
  };
}

/**
 * Whether an instance runs something other than the release: a different SHA, or none known.
 * A group without a release has nothing to drift from.
 */
export function isDrift(releaseSha: string | undefined, sha: string | undefined): boolean {
  return releaseSha !== undefined && sha !== releaseSha;
}

/** The group's instances in service and in its warm pool, as Auto Scaling lists them. */
async function groupInstances(deps: Deps, name: string): Promise<Instance[]> {
  const instances: Instance[] = [];
  let warmPool = false;
  const pages = paginateDescribeAutoScalingGroups(
    { client: deps.clients.autoScaling },
    { AutoScalingGroupNames: [name] },
  );
  for await (const page of pages) {
    for (const found of page.AutoScalingGroups ?? []) {
      if (found.AutoScalingGroupName !== name) continue;
      instances.push(...(found.Instances ?? []));
      warmPool ||= found.WarmPoolConfiguration !== undefined;
    }
  }
  // Warm-pool instances are not among the group's instances; only DescribeWarmPool lists them.
  if (warmPool) {
    const warm = paginateDescribeWarmPool(
      { client: deps.clients.autoScaling },
      { AutoScalingGroupName: name },
    );
    for await (const page of warm) instances.push(...(page.Instances ?? []));
  }
  return instances;
}

/** The group's release record, read fresh. */
export async function release(deps: Deps, action: Action<'release'>): Promise<OperatorAnswer> {
  requireManagedGroup(deps.config, action.group);
  const record = await readGroupRecord(deps, action.group, true);
  return { action: 'release', group: action.group, ...(record.release && { release: record.release }) };
}

/** What a launch deploys now, in words. */
function launchesDeploy(group: GroupConfig, current: Release | undefined): string {
  if (group.follow === 'branch') return 'the branch head (the group follows its branch)';
  return current
    ? `the release ${current.sha}`
    : 'the branch head until a first successful deploy records a release';
}

/**
 * The kill switch: launches go into service without a deploy (they run the image's code) until
 * resume. Pausing again keeps the first pause's time and takes the new reason.
 */
export async function pause(deps: Deps, action: Action<'pause'>): Promise<OperatorAnswer> {
  requireManagedGroup(deps.config, action.group);
  const record = await readGroupRecord(deps, action.group, true);
  const paused = {
    since: record.paused?.since ?? new Date(deps.clock.now()).toISOString(),
    reason: action.reason ?? 'paused by the operator',
  };
  await writeRecord(deps, action.group, 'paused', paused);
  deps.logger.warn('group paused: launches go into service without a deploy', {
    group: action.group,
    ...paused,
  });
  const inFlight = record.deployment ? ` Deployment ${record.deployment.id} in flight is not stopped.` : '';
  return {
    action: 'pause',
    group: action.group,
    paused: true,
    summary:
      `${action.group} paused since ${paused.since} (${paused.reason}): within ${RELEASE_CACHE_MS / 1000} s, new instances go into service ` +
      `without a deploy and run the image's code until resume. Release: ${record.release?.sha ?? 'none'}.${inFlight}`,
  };
}

/** Ends a pause: launches deploy again. */
export async function resume(deps: Deps, action: Action<'resume'>): Promise<OperatorAnswer> {
  const group = requireManagedGroup(deps.config, action.group);
  const record = await readGroupRecord(deps, action.group, true);
  if (record.paused) await deleteRecords(deps, action.group, ['paused']);
  deps.logger.info('group resumed: launches deploy again', {
    group: action.group,
    wasPaused: !!record.paused,
  });
  const was = record.paused ? `was paused since ${record.paused.since}` : 'was not paused';
  return {
    action: 'resume',
    group: action.group,
    paused: false,
    summary:
      `${action.group} resumed (${was}): within ${RELEASE_CACHE_MS / 1000} s, new instances deploy ${launchesDeploy(group, record.release)}. ` +
      "Instances launched while paused run the image's code: status shows them as drift; the next deploy brings them to the release.",
  };
}
