import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  COMMAND_STATUS_DETAIL_TYPE,
  isTerminalStatus,
  LAUNCH_DETAIL_TYPE,
} from '../../functions/shared/event-patterns';
import type { InstanceChange } from '../../scripts/local/control-plane/auto-scaling';
import type { AwsEvent } from '../../scripts/local/control-plane/event-bus';
import type { Command } from '../../scripts/local/control-plane/ssm';
import { BOOT_FINISHED } from '../../scripts/local/deploy-agent';
import { DOCUMENT_NAME, GROUP_NAME, HOOK_NAME, type LocalRun } from '../../scripts/local/local-run';
import { localRuns, pastTheQueuesWatch } from './support';

// The invariant under faults: a wait ends CONTINUE only after a deploy made for that wait
// succeeded. Real deploys where the instance's own behaviour matters, the stand-in elsewhere.
jest.setTimeout(90_000);

const start = localRuns();

const isLaunch = (event: AwsEvent) => event['detail-type'] === LAUNCH_DETAIL_TYPE;
const isCommandEnd = (event: AwsEvent) =>
  event['detail-type'] === COMMAND_STATUS_DETAIL_TYPE && isTerminalStatus(event.detail.status as string);

function commandsFor(local: LocalRun, instanceId: string): Command[] {
  return local.plane.ssm.commands().filter((c) => c.invocations.some((i) => i.instanceId === instanceId));
}

/** Every lifecycle completion, in order, as Auto Scaling saw it. */
function completions(local: LocalRun): Extract<InstanceChange, { kind: 'completed' }>[] {
  const seen: Extract<InstanceChange, { kind: 'completed' }>[] = [];
  local.plane.autoScaling.onChange((change) => {
    if (change.kind === 'completed') seen.push(change);
  });
  return seen;
}

describe('the invariant under faults', () => {
  it('a post-publish failure followed by a duplicate command does not put the instance in service', async () => {
    // The first deploy's status events are lost, so the instance still waits when the
    // duplicate (a retry, a second sender) arrives with the same parameters.
    let loseStatus = true;
    const local = await start({ faults: { drop: (event) => loseStatus && isCommandEnd(event) } });
    local.app?.commitFailingDeploy('after-publish');
    local.scaleTo(1);
    const id = local.instances()[0]?.id as string;
    await local.waitFor(
      'the first deploy to fail',
      () => isTerminalStatus(commandsFor(local, id)[0]?.status),
      60_000,
    );
    const [first] = commandsFor(local, id);
    loseStatus = false;

    const duplicate = local.plane.ssm.sendCommand({
      DocumentName: DOCUMENT_NAME,
      InstanceIds: [id],
      Parameters: first?.parameters ?? {},
    });
    await local.waitFor('the instance to leave', () => local.records.get(id)?.result !== undefined, 60_000);

    expect(first?.invocations[0]).toMatchObject({ status: 'Failed', responseCode: 9 });
    expect(duplicate.invocations[0]?.status).toBe('Failed');
    expect(local.records.get(id)).toMatchObject({ result: 'ABANDON', completedBy: 'api' });
  });

  it('reconciles racing a launch that waits for its agent end with one deploy and the instance in service', async () => {
    // 30 simulated seconds (3 s) until the agent registers: the queue watches the wait for
    // 1 s, then the reconcile schedule, every 5 simulated seconds, may start a deploy too, while
    // a message the queue delayed can still arrive.
    const local = await start({
      agentDelaySeconds: 30,
      bootDelaySeconds: 0,
      reconcileEverySeconds: 5,
      config: { agentWaitSeconds: 1 },
    });
    const seen = completions(local);

    local.scaleTo(1);
    const id = local.instances()[0]?.id as string;
    await local.waitFor('the instance InService', () => local.settled(), 60_000);
    await local.waitFor(
      'every command to end',
      () => commandsFor(local, id).every((c) => isTerminalStatus(c.status)),
      30_000,
    );

    expect(seen.map((c) => [c.hookName, c.result])).toEqual([[HOOK_NAME, 'CONTINUE']]);
    expect(local.revisionOf(id)).toBe(local.app?.head());
    // A second deploy for the wait either never started or gave no verdict (exit 13).
    const outcomes = commandsFor(local, id).map((c) => c.invocations[0]?.responseCode);
    expect(outcomes.filter((code) => code === 0)).toHaveLength(1);
    expect(outcomes.filter((code) => code !== 0 && code !== 13)).toEqual([]);
  });

  it('boot finishing after the agent registers: the deploy waits for it and succeeds', async () => {
    // The agent is online at once; boot (user data: the clone) takes 40 simulated seconds.
    const local = await start({ agentDelaySeconds: 0, bootDelaySeconds: 40 });

    local.scaleTo(1);
    const id = local.instances()[0]?.id as string;
    await local.waitFor('the instance InService', () => local.settled(), 60_000);

    const [deploy] = commandsFor(local, id);
    const bootedAt = Date.parse(readFileSync(join(local.dir, 'instances', id, BOOT_FINISHED), 'utf8').trim());
    expect(deploy?.requestedAt).toBeLessThan(bootedAt);
    expect(commandsFor(local, id)).toHaveLength(1);
    expect(local.records.get(id)).toMatchObject({ result: 'CONTINUE', completedBy: 'api' });
    expect(local.revisionOf(id)).toBe(local.app?.head());
  });

  it('warm-pool reuse: an instance back in a wait with its old Success in history is deployed again before CONTINUE', async () => {
    // Scale-in returns the instance to the pool; its way back into service is a new wait
    // whose launch event is lost, so the reconcile decides with the old command in history.
    const local = await start({
      deploy: { durationMs: 200 },
      warmPool: { minSize: 0, maxGroupPreparedCapacity: 0, reuseOnScaleIn: true },
      faults: { drop: (event) => isLaunch(event) && event.detail.Origin === 'WarmPool' },
      config: { agentWaitSeconds: 1 },
    });
    const seen = completions(local);
    local.scaleTo(1);
    await local.waitFor('the first wait to end', () => local.settled(), 20_000);
    const id = local.instances()[0]?.id as string;
    local.scaleTo(0);
    expect(local.plane.autoScaling.instance(id)?.state).toBe('Warmed:Stopped');

    local.scaleTo(1);
    expect(local.plane.autoScaling.instance(id)?.state).toBe('Pending:Wait');
    await local.waitFor(
      'the agent online again',
      () => local.plane.ssm.managedInstances().some((m) => m.id === id && m.online),
      10_000,
    );
    await pastTheQueuesWatch(local);
    await local.orchestrator.reconcile();
    await local.waitFor('the instance back in service', () => local.settled(), 20_000);

    const [old, fresh] = commandsFor(local, id);
    const second = seen.filter((c) => c.instance.id === id)[1];
    expect(old?.status).toBe('Success');
    expect(fresh?.status).toBe('Success');
    expect(second).toMatchObject({ result: 'CONTINUE', reason: 'api' });
    expect(fresh?.invocations[0]?.endedAt).toBeDefined();
    expect(local.records.get(id)?.completedAt).toBeGreaterThanOrEqual(
      fresh?.invocations[0]?.endedAt ?? Infinity,
    );
  });

  it('a lost launch event with metadata overrides: the reconcile deploys the override revision', async () => {
    const local = await start({
      deploy: { durationMs: 100 },
      hook: { notificationMetadata: '{"revision":"v1.2.3","environment":"staging"}' },
      faults: { drop: isLaunch },
      config: { agentWaitSeconds: 1 },
    });

    local.scaleTo(1);
    const id = local.instances()[0]?.id as string;
    await local.waitFor(
      'the agent online',
      () => local.plane.ssm.managedInstances().some((m) => m.id === id),
      10_000,
    );
    await pastTheQueuesWatch(local);
    await local.orchestrator.reconcile();
    await local.waitFor('the instance InService', () => local.settled(), 20_000);

    const [deploy] = commandsFor(local, id);
    expect(deploy?.parameters).toMatchObject({ revision: ['v1.2.3'], environment: ['staging'] });
  });

  it('one denied instance among fifteen in a reconcile: the other fourteen are repaired', async () => {
    let denied = '';
    const local = await start({
      deploy: { durationMs: 100 },
      maxSize: 15,
      faults: { drop: isLaunch },
      agentDelaySeconds: (instance, index) => {
        if (index === 0) denied = instance.id;
        return 5;
      },
      // The orchestrator's role may not touch this one instance's commands (a tag condition).
      denied: (call) => call.service === 'ssm' && call.instanceIds.includes(denied),
      config: { agentWaitSeconds: 1 },
    });

    local.scaleTo(15);
    await local.waitFor('15 agents online', () => local.plane.ssm.managedInstances().length === 15, 20_000);
    await pastTheQueuesWatch(local);
    void local.orchestrator.reconcile();
    await local.waitFor(
      '14 instances InService',
      () => local.instances().filter((i) => i.state === 'InService').length === 14,
      30_000,
    );

    expect(local.plane.autoScaling.instance(denied)?.state).toBe('Pending:Wait');
    expect(local.plane.calls.some((c) => c.error === 'AccessDeniedException')).toBe(true);
    await local.waitFor(
      'StuckInstances published',
      () => readFileSync(join(local.dir, 'orchestrator.log'), 'utf8').includes('"StuckInstances"'),
      10_000,
    );
  });

  it('a command carrying a foreign hook completes nothing', async () => {
    // Another team's launch hook holds the instance too; someone allowed to send the
    // document names that hook (and its token) in a command of their own.
    const local = await start({ deploy: { durationMs: 100 } });
    local.plane.autoScaling.putLifecycleHook(GROUP_NAME, { name: 'other-team', heartbeatTimeout: 3600 });
    const seen = completions(local);

    local.scaleTo(1);
    const id = local.instances()[0]?.id as string;
    await local.waitFor('selfdeploy to complete its own hook', () => seen.length === 1, 20_000);
    const theirs = local.plane.bus.published.find(
      (e) => isLaunch(e) && e.detail.LifecycleHookName === 'other-team',
    );
    const forged = local.plane.ssm.sendCommand({
      DocumentName: DOCUMENT_NAME,
      InstanceIds: [id],
      Parameters: {
        autoScalingGroupName: [GROUP_NAME],
        lifecycleHookName: ['other-team'],
        lifecycleActionToken: [theirs?.detail.LifecycleActionToken as string],
        instanceId: [id],
      },
    });
    await local.waitFor('the forged command to end', () => isTerminalStatus(forged.status), 10_000);
    await local.plane.bus.idle();

    expect(forged.status).toBe('Success');
    expect(seen.map((c) => [c.hookName, c.result])).toEqual([[HOOK_NAME, 'CONTINUE']]);
    expect(local.plane.autoScaling.instance(id)?.state).toBe('Pending:Wait');
    expect(local.plane.autoScaling.instance(id)?.actions.has('other-team')).toBe(true);
  });
});
