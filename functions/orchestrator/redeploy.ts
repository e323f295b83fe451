import {
  DescribeAutoScalingGroupsCommand,
  paginateDescribeAutoScalingInstances,
} from '@aws-sdk/client-auto-scaling';
import { InvalidInputError } from '../shared/errors';
import { MetricName } from '../shared/metric-names';
import { SEND_TAG_CONDITION_KEY } from '../shared/send-permission';
import {
  agentStatuses,
  deployParameters,
  isAgentNotReady,
  MAX_INSTANCES_PER_COMMAND,
  sendSelfDeploy,
} from './commands';
import { managedGroup } from './config';
import { commandComment } from './decisions';
import type { Deps } from './deps';
import type { RedeployAction } from './events';
import { chunk } from './utilities';

/** What the Lambda console shows the operator after a redeploy. */
export interface RedeploySummary {
  readonly action: 'redeploy';
  readonly revision: string;
  readonly commands: { commandId: string; group: string; instanceIds: string[] }[];
  readonly instances: number;
  readonly skipped: { instanceId: string; reason: string }[];
}

/** DescribeAutoScalingInstances takes at most this many instance ids. */
const IDS_PER_DESCRIBE = 50;

/**
 * Redeploys InService instances, by id or a whole managed group: one command per group and
 * batch of at most 50, with SSM's rate controls so a bad revision stops early instead of
 * reaching the whole fleet. Instances that cannot take a deploy are listed with the reason.
 */
export async function redeploy(deps: Deps, request: RedeployAction): Promise<RedeploySummary> {
  const revision = request.revision ?? '';
  const skipped: RedeploySummary['skipped'] = [];
  const byGroup = new Map<string, string[]>();
  const add = (group: string, instanceId: string) =>
    byGroup.set(group, [...(byGroup.get(group) ?? []), instanceId]);

  if (request.autoScalingGroupName !== undefined) {
    const name = request.autoScalingGroupName;
    if (!managedGroup(deps.config, name)) {
      throw new InvalidInputError(
        `group ${JSON.stringify(name)} is not managed by selfdeploy (managed: ${Object.keys(deps.config.groups).join(', ')})`,
      );
    }
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
  }

  const online = await agentStatuses(deps, [...byGroup.values()].flat());
  const commands: RedeploySummary['commands'] = [];
  for (const [groupName, ids] of byGroup) {
    const group = managedGroup(deps.config, groupName);
    if (!group) continue;
    const ready = ids.filter((id) => {
      const ping = online.get(id);
      if (ping !== 'Online')
        skipped.push({ instanceId: id, reason: `SSM agent ${ping ?? 'not registered'}` });
      return ping === 'Online';
    });
    for (const batch of chunk(ready, MAX_INSTANCES_PER_COMMAND)) {
      try {
        const commandId = await sendSelfDeploy(
          deps,
          batch,
          deployParameters(group, { revision }),
          commandComment('redeploy'),
          { maxConcurrency: deps.config.redeployMaxConcurrency, maxErrors: deps.config.redeployMaxErrors },
        );
        commands.push({ commandId, group: groupName, instanceIds: batch });
        deps.metrics.record(MetricName.ManualRedeploy, groupName, batch.length);
        deps.logger.info('manual redeploy started', {
          group: groupName,
          commandId,
          instances: batch.length,
          revision,
        });
      } catch (error) {
        if (!isAgentNotReady(error)) throw error;
        // Every agent in the batch is Online, so this is the role's tag condition, not a late agent.
        const reason = `SendCommand refused although the SSM agent is Online (is the instance's ${SEND_TAG_CONDITION_KEY} tag a managed group?): ${(error as Error).message}`;
        for (const id of batch) skipped.push({ instanceId: id, reason });
      }
    }
  }
  return {
    action: 'redeploy',
    revision: revision || '(pinned or branch head)',
    commands,
    instances: commands.reduce((sum, command) => sum + command.instanceIds.length, 0),
    skipped,
  };
}
