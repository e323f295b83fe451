import { LAUNCH_DETAIL_TYPE } from '../../functions/shared/event-patterns';
import type { AwsEvent } from '../../scripts/local/control-plane/event-bus';
import { LocalRun, type LocalRunOptions } from '../../scripts/local/local-run';
import { commandsPerInstance, pastTheQueuesWatch } from './support';

// The fast stand-in deploy (a short sleep, exit 0) keeps these about the orchestration:
// lost, duplicated and throttled traffic, and the hook's own timeout.
jest.setTimeout(60_000);

let run: LocalRun | undefined;

async function start(options: LocalRunOptions = {}): Promise<LocalRun> {
  run = await LocalRun.start({ deploy: { durationMs: 100 }, ...options });
  return run;
}

afterEach(async () => {
  await run?.stop();
  run = undefined;
});

const isLaunch = (event: AwsEvent) => event['detail-type'] === LAUNCH_DETAIL_TYPE;
const isTerminalCommandStatus = (event: AwsEvent) =>
  event.source === 'aws.ssm' && ['Success', 'Failed'].includes(event.detail.status as string);

describe('recovering from lost, repeated and throttled traffic', () => {
  it('a lost launch event is recovered by the reconcile: the instance is deployed and in service', async () => {
    const local = await start({ faults: { drop: isLaunch }, config: { agentWaitSeconds: 1 } });

    local.scaleTo(2);
    await local.waitFor('both agents online', () => local.plane.ssm.managedInstances().length === 2, 10_000);
    expect(local.plane.ssm.commands()).toHaveLength(0);
    await pastTheQueuesWatch(local);
    await local.orchestrator.reconcile();
    await local.waitFor('2 instances InService', () => local.settled(), 20_000);

    expect(local.plane.bus.dropped.filter(isLaunch)).toHaveLength(2);
    expect([...commandsPerInstance(local).values()]).toEqual([1, 1]);
    expect([...local.records.values()].map((r) => r.result)).toEqual(['CONTINUE', 'CONTINUE']);
  });

  it('a lost status event is recovered by the reconcile: the finished deploy completes the action', async () => {
    const local = await start({
      faults: { drop: isTerminalCommandStatus },
      agentDelaySeconds: 0,
      config: { agentWaitSeconds: 1 },
    });

    local.scaleTo(1);
    await local.waitFor(
      'the deploy to succeed',
      () => local.plane.ssm.commands()[0]?.status === 'Success',
      20_000,
    );
    await local.plane.bus.idle();
    expect(local.instances()[0]?.state).toBe('Pending:Wait');
    await pastTheQueuesWatch(local);
    await local.orchestrator.reconcile();
    await local.waitFor('the instance InService', () => local.settled(), 20_000);

    expect([...commandsPerInstance(local).values()]).toEqual([1]);
    expect([...local.records.values()][0]).toMatchObject({ result: 'CONTINUE', completedBy: 'api' });
  });

  it('duplicate deliveries of every event end each wait once, and deploy only for that wait', async () => {
    // Copies 0.5 s apart reach the queue while the first deploy is still running. A copy handled
    // in another execution at the same moment as the first may send a second command for the
    // same wait (on a real instance it exits 13 and carries no verdict); any later copy finds
    // the command already sent.
    const local = await start({
      agentDelaySeconds: 0,
      deploy: { durationMs: 2_000 },
      faults: { duplicates: () => 2, duplicateSpacingSeconds: 5 },
    });

    local.scaleTo(3);
    await local.waitFor('3 instances InService', () => local.settled(), 30_000);
    await local.plane.bus.idle();

    const tokens = new Map(
      local.plane.bus.deliveries
        .filter((delivery) => isLaunch(delivery.event))
        .map(({ event }) => [event.detail.EC2InstanceId, event.detail.LifecycleActionToken]),
    );
    for (const command of local.plane.ssm.commands()) {
      const instanceId = command.invocations[0]?.instanceId ?? '';
      expect(command.parameters.lifecycleActionToken).toEqual([tokens.get(instanceId)]);
    }
    // Three copies of each launch event: never a command per copy.
    expect(Math.max(...commandsPerInstance(local).values())).toBeLessThanOrEqual(2);
    expect(local.plane.bus.deadLetters).toEqual([]);
    expect(local.orchestrator.deadLetterQueue.counts()).toEqual({ visible: 0, notVisible: 0, delayed: 0 });
    expect([...local.records.values()].map((r) => [r.result, r.completedBy])).toEqual([
      ['CONTINUE', 'api'],
      ['CONTINUE', 'api'],
      ['CONTINUE', 'api'],
    ]);
  });

  it('with 30% of API calls throttled, every instance still ends in service', async () => {
    const local = await start({ throttle: { fraction: 0.3 }, reconcileEverySeconds: 30 });

    local.scaleTo(5);
    await local.waitFor('5 instances InService', () => local.settled(), 50_000);

    const throttled = local.plane.calls.filter(
      (c) => c.error === 'Throttling' || c.error === 'ThrottlingException',
    );
    expect(throttled.length).toBeGreaterThan(0);
    expect([...local.records.values()].map((r) => r.result)).toEqual(Array(5).fill('CONTINUE'));
  });

  it("applies the hook's default result when nothing completes the action in time", async () => {
    // The first instance's agent never registers; a 60 s heartbeat timeout at 20x lasts 3 s.
    const local = await start({
      timeScale: 20,
      hook: { heartbeatTimeout: 60, defaultResult: 'ABANDON' },
      agentDelaySeconds: (_, index) => (index === 0 ? undefined : 5),
      config: { agentWaitSeconds: 1 },
    });

    local.scaleTo(1);
    await local.waitFor('a replacement InService', () => local.settled(), 30_000);

    const records = [...local.records.values()];
    expect(records[0]).toMatchObject({ result: 'ABANDON', completedBy: 'timeout' });
    expect(records[0]?.terminatedAt).toBeDefined();
    expect(local.plane.ssm.commands().some((c) => c.invocations[0]?.instanceId === records[0]?.id)).toBe(
      false,
    );
    expect(records.at(-1)).toMatchObject({ result: 'CONTINUE', completedBy: 'api' });
  });
});
