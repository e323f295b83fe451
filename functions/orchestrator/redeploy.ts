import {
  DescribeAutoScalingGroupsCommand,
  paginateDescribeAutoScalingInstances,
} from '@aws-sdk/client-auto-scaling';
import { ActionRefusedError, InvalidInputError } from '../shared/errors';
import { MetricName } from '../shared/metric-names';
import { SEND_TAG_CONDITION_KEY } from '../shared/send-permission';
import { agentStatuses } from './commands';
import { managedGroup, requireManagedGroup } from './config';
import { commandComment } from './decisions';
import { sendInBatches } from './deployments';
import type { Deps } from './deps';
import type { RedeployAction } from './events';
import { readGroupRecord } from './release-store';
import { chunk } from './utilities';

/** What the Lambda console shows the operator after a redeploy. */
export interface RedeploySummary {
  readonly action: 'redeploy';
  readonly commands: { commandId: string; group: string; revision: string; instanceIds: string[] }[];
  readonly instances: number;
  readonly skipped: { instanceId: string; reason: string }[];
}

/**
 * Refuses, before anything is sent, a redeploy that reaches a `deployWith: standby` group (its
 * instances named): restarting them in place is what the group opted out of, and a deploy of
 * the release takes each batch out of service first.
 */
function refuseStandby(deps: Deps, byGroup: ReadonlyMap<string, readonly string[]>): void {
  const standby = [...byGroup].filter(([name]) => managedGroup(deps.config, name)?.deployWith === 'standby');
  if (standby.length === 0) return;
  const named = standby.map(([name, ids]) => (ids.length > 0 ? `${name} (${ids.join(', ')})` : name));
  const deploys = standby.map(
    ([name]) => `{"action":"deploy","group":${JSON.stringify(name)},"revision":"<its release SHA>"}`,
  );
  throw new ActionRefusedError(
    `redeploy refused: group ${named.join(', group ')} deploys through Standby (deployWith: standby) and a redeploy would restart the application while it serves; deploy the release instead, which takes each batch out of service first: ${deploys.join(', ')}`,
  );
}

/** DescribeAutoScalingInstances takes at most this many instance ids. */
const IDS_PER_DESCRIBE = 50;

/**
 * Runs the deploy again on InService instances, by id or a whole managed group, at what their
 * group runs: the release's SHA (the branch head for a group that follows its branch or has
 * no release yet). A new revision is a deploy (canary first, then promoted), never a
 * redeploy: one that does not stick, as the next launch deploys the release, is refused.
 * One command per group and batch of at most 50, with SSM's rate controls so a failing deploy
 * stops early. Instances that cannot take a deploy are listed with the reason. A group that
 * deploys through Standby is refused, naming the deploy to use: a redeploy restarts instances
 * while they serve.
 */
export async function redeploy(deps: Deps, request: RedeployAction): Promise<RedeploySummary> {
  if (request.revision) {
    const group = request.autoScalingGroupName ?? '<group>';
    throw new InvalidInputError(
      `redeploy takes no revision: it runs the release again; use deploy to change it ({"action":"deploy","group":${JSON.stringify(group)},"revision":${JSON.stringify(request.revision)}})`,
    );
  }
  const skipped: RedeploySummary['skipped'] = [];
  const byGroup = new Map<string, string[]>();
  const add = (group: string, instanceId: string) =>
    byGroup.set(group, [...(byGroup.get(group) ?? []), instanceId]);

  if (request.autoScalingGroupName !== undefined) {
    const name = request.autoScalingGroupName;
    requireManagedGroup(deps.config, name);
    refuseStandby(deps, new Map([[name, []]]));
    const output = await deps.clients.autoScaling.send(
      new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [name] }),
    );
    for (const instance of output.AutoScalingGroups?.[0]?.Instances ?? []) {
      if (!instance.InstanceId) continue;
      if (instance.LifecycleState === 'InService') add(name, instance.InstanceId);
      else
        skipped.push({
          instanceId: instance.InstanceId,
          reason: `lifecycle state ${instance.LifecycleState}`,
        });
    }
  } else {
    const wanted = [...new Set(request.instanceIds)];
    const found = new Set<string>();
    for (const ids of chunk(wanted, IDS_PER_DESCRIBE)) {
      const pages = paginateDescribeAutoScalingInstances(
        { client: deps.clients.autoScaling },
        { InstanceIds: ids, MaxRecords: IDS_PER_DESCRIBE },
      );
      for await (const page of pages) {
        for (const instance of page.AutoScalingInstances ?? []) {
          const { InstanceId: id, AutoScalingGroupName: group, LifecycleState: state } = instance;
          if (!id || !group) continue;
          found.add(id);
          if (!managedGroup(deps.config, group))
            skipped.push({ instanceId: id, reason: `group ${group} is not managed` });
          else if (state !== 'InService')
            skipped.push({ instanceId: id, reason: `lifecycle state ${state}` });
          else add(group, id);
        }
      }
    }
    for (const id of wanted) {
      if (!found.has(id)) skipped.push({ instanceId: id, reason: 'not in any Auto Scaling group' });
    }
    refuseStandby(deps, byGroup);
  }

  const online = await agentStatuses(deps, [...byGroup.values()].flat());
  const commands: RedeploySummary['commands'] = [];
  for (const [groupName, ids] of byGroup) {
    const group = managedGroup(deps.config, groupName);
    if (!group) continue;
    // A group that follows its branch deploys the branch head: its release is not read.
    const release =
      group.follow === 'release' ? (await readGroupRecord(deps, groupName, true)).release : undefined;
    const revision = release?.sha ?? '';
    const shown = revision || '(pinned or branch head)';
    const ready = ids.filter((id) => {
      const ping = online.get(id);
      if (ping !== 'Online')
        skipped.push({ instanceId: id, reason: `SSM agent ${ping ?? 'not registered'}` });
      return ping === 'Online';
    });
    const error = await sendInBatches(deps, group, groupName, ready, revision, commandComment('redeploy'), {
      sent: (batch, commandId) => {
        commands.push({ commandId, group: groupName, revision: shown, instanceIds: batch });
        deps.metrics.record(MetricName.ManualRedeploy, groupName, batch.length);
        deps.logger.info('manual redeploy started', {
          group: groupName,
          commandId,
          instances: batch.length,
          revision: shown,
        });
      },
      refused: (batch, error) => {
        // Every agent in the batch is Online, so this is the role's tag condition, not a late agent.
        const reason = `SendCommand refused although the SSM agent is Online (is the instance's ${SEND_TAG_CONDITION_KEY} tag a managed group?): ${error.message}`;
        for (const id of batch) skipped.push({ instanceId: id, reason });
      },
    });
    if (error) throw error;
  }
  return {
    action: 'redeploy',
    commands,
    instances: commands.reduce((sum, command) => sum + command.instanceIds.length, 0),
    skipped,
  };
}
