import {
  type DeployTarget,
  noDeployHolds,
  type startDeploy,
} from '../../functions/orchestrator/deploy-start';
import { harness, INSTANCE, TOKEN } from './support';

const target = (): DeployTarget => {
  const { deps } = harness();
  const group = deps.config.groups.web;
  if (!group) throw new Error('the sample configuration has no group web');
  return {
    instanceId: INSTANCE,
    groupName: 'web',
    group,
    action: { group: 'web', hook: 'selfdeploy-launch', instanceId: INSTANCE, token: TOKEN },
    place: 'AutoScalingGroup',
    reason: 'reconcile',
  };
};

describe('the deploy start', () => {
  it('takes only a target a duplicate check cleared', () => {
    // @ts-expect-error a target no duplicate check has looked at is not a CheckedTarget
    const unchecked: Parameters<typeof startDeploy>[1] = target();
    expect(unchecked.instanceId).toBe(INSTANCE);
  });

  it('clears a reconciled target only when every command of its current wait has ended', () => {
    const cleared = target();
    expect(noDeployHolds(cleared, [])).toBe(cleared);
    expect(noDeployHolds(cleared, [{ Status: 'Failed' }, { Status: 'Cancelled' }])).toBe(cleared);
    expect(() => noDeployHolds(cleared, [{ Status: 'Failed' }, { Status: 'InProgress' }])).toThrow(
      `a deploy for the current wait of ${INSTANCE} is still running`,
    );
  });
});
