import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { GetParametersByPathCommand, ListCommandsCommand, SendCommandCommand } from '@aws-sdk/client-ssm';
import {
  FIRST_NUDGE_SECONDS,
  MAX_NUDGE_SECONDS,
  MAX_NUDGES_PER_STEP,
  NUDGE_GROWTH,
  NUDGE_KIND,
  nudgeDelaySeconds,
  ROOM_NUDGE_SECONDS,
  readNudgeMessage,
} from '../../functions/orchestrator/nudge';
import { handleQueue } from '../../functions/orchestrator/queue';
import { route } from '../../functions/orchestrator/router';
import {
  deployment,
  enteredStandby as entered,
  exitedStandby as exited,
  lastDeployment,
  NEW_SHA,
  OLD_SHA,
  type SentCommand,
  standbyDeployStarted,
  type World,
  world,
} from './deployments-world';
import { autoScaling, fixture, queueBatch, sqs, ssm, WAIT_QUEUE_URL } from './support';

// A standby deployment waiting on Auto Scaling (a batch entering Standby, returning, or room
// within MinSize / MaxSize) nudges itself through the event queue, so it moves in seconds
// rather than reconcile intervals; a nudge moves it exactly as reconcile would, or is ignored.

interface SentNudge {
  readonly body: Record<string, unknown>;
  readonly delaySeconds: number;
}

/** Every nudge put on the queue so far, in order. */
const sentNudges = (): SentNudge[] =>
  sqs.commandCalls(SendMessageCommand).map((call) => {
    expect(call.args[0].input.QueueUrl).toBe(WAIT_QUEUE_URL);
    return {
      body: JSON.parse(String(call.args[0].input.MessageBody)),
      delaySeconds: Number(call.args[0].input.DelaySeconds),
    };
  });
const lastNudge = (): SentNudge => {
  const all = sentNudges();
  const last = all[all.length - 1];
  if (!last) throw new Error('nothing was nudged');
  return last;
};
const deliver = (w: World, ...bodies: unknown[]) => handleQueue(w.deps, queueBatch(...bodies));

describe('nudge delays', () => {
  it('grow by half from 2 s up to 15 s, jittered in the upper half, and are 30–60 s while waiting for room', () => {
    const ids = Array.from({ length: 300 }, (_, i) => `d-${i.toString(32).padStart(12, 'a')}`);
    for (let attempt = 0; attempt < MAX_NUDGES_PER_STEP; attempt++) {
      const bound = Math.min(15, 2 * 1.5 ** attempt);
      const seen = ids.map((deploymentId) =>
        nudgeDelaySeconds({ deploymentId, step: 3, attempt, waitingFor: 'standby' }),
      );
      expect(Math.max(...seen)).toBe(Math.ceil(bound));
      expect(Math.min(...seen)).toBeGreaterThanOrEqual(Math.max(1, Math.floor(bound / 2)));
    }
    const room = ids.map((deploymentId) =>
      nudgeDelaySeconds({ deploymentId, step: 3, attempt: 0, waitingFor: 'room' }),
    );
    expect(Math.max(...room)).toBe(60);
    expect(Math.min(...room)).toBeGreaterThanOrEqual(30);
  });
});

describe('docs/deploying.md', () => {
  it('states the nudge delays and their bound as the code has them', () => {
    const doc = readFileSync(join(__dirname, '..', '..', 'docs', 'deploying.md'), 'utf8').replace(
      /\s+/g,
      ' ',
    );
    const growth = { 1.5: 'by half' }[NUDGE_GROWTH];

    expect(doc).toContain(`"kind":"${NUDGE_KIND}"`);
    expect(doc).toContain(
      `${FIRST_NUDGE_SECONDS} s, growing ${growth} up to ${MAX_NUDGE_SECONDS} s, jittered`,
    );
    expect(doc).toContain(`${ROOM_NUDGE_SECONDS / 2}–${ROOM_NUDGE_SECONDS} s while it waits for room`);
    expect(doc).toContain(`at most ${MAX_NUDGES_PER_STEP} nudges per step`);
  });
});

describe('a standby deployment nudged through the event queue', () => {
  it('nudges its canary entering Standby; the nudge, once the canary is in Standby, sends its command', async () => {
    const { w, answer } = await standbyDeployStarted(3, 1);

    const first = lastNudge();
    expect(first.body).toEqual({
      kind: NUDGE_KIND,
      version: 1,
      group: 'web',
      deploymentId: answer.deploymentId,
      step: 0,
      waitingFor: 'standby',
      attempt: 0,
    });
    expect(first.delaySeconds).toBeGreaterThanOrEqual(1);
    expect(first.delaySeconds).toBeLessThanOrEqual(2);

    w.settle();
    const response = await deliver(w, first.body);

    expect(response.batchItemFailures).toEqual([]);
    expect((w.sentFor('canary')[0] as SentCommand).instanceIds).toEqual([answer.canary]);
    expect(deployment(w)).toMatchObject({ standby: { stage: 'deploying' } });
    // A running command is moved on by its status event: nothing more is nudged.
    expect(sentNudges()).toHaveLength(1);
  });

  it('nudges again, later each time, while the batch is still on its way, and stops after its nudges', async () => {
    const { w } = await standbyDeployStarted(3, 1);

    for (let attempt = 1; attempt < MAX_NUDGES_PER_STEP; attempt++) {
      await deliver(w, lastNudge().body);
      expect(lastNudge().body).toMatchObject({ step: 0, waitingFor: 'standby', attempt });
      expect(lastNudge().delaySeconds).toBeLessThanOrEqual(Math.ceil(Math.min(15, 2 * 1.5 ** attempt)));
    }
    expect(sentNudges()).toHaveLength(MAX_NUDGES_PER_STEP);
    await deliver(w, lastNudge().body);

    // The last nudge ends the chain: reconcile looks from now on.
    expect(sentNudges()).toHaveLength(MAX_NUDGES_PER_STEP);
    expect(entered()).toHaveLength(1);
    expect(w.commands).toEqual([]);
  });

  it('is moved to its promotion by nudges and status events alone, without reconcile', async () => {
    const { w, answer } = await standbyDeployStarted(5, 0);
    let delivered = 0;

    for (let round = 0; round < 60 && deployment(w); round++) {
      w.settle();
      for (const command of w.commands.filter((sent) => sent.status === 'InProgress')) {
        w.finish(command.commandId, NEW_SHA);
        await route(w.deps, w.statusEvent(command));
      }
      const pending = sentNudges().slice(delivered);
      delivered += pending.length;
      if (pending.length > 0) await deliver(w, ...pending.map((nudge) => nudge.body));
    }

    expect(lastDeployment(w)).toMatchObject({ id: answer.deploymentId, phase: 'promoted', sha: NEW_SHA });
    expect(w.record('release')).toMatchObject({ sha: NEW_SHA, previous: OLD_SHA });
    expect(new Set(w.commands.flatMap((command) => command.instanceIds))).toEqual(new Set(w.inService));
    expect(exited().flatMap((input) => input.InstanceIds)).toHaveLength(5);
    expect(w.states.size).toBe(0);
  });

  it('waiting for room at MinSize is nudged about once a minute, naming room, and goes on once there is room', async () => {
    const { w, answer } = await standbyDeployStarted(4, 0);
    w.settle();
    await deliver(w, lastNudge().body); // the canary's command sent
    const canary = w.sentFor('canary')[0] as SentCommand;
    w.finish(canary.commandId, NEW_SHA);
    await route(w.deps, w.statusEvent(canary)); // the canary returning
    expect(lastNudge().body).toMatchObject({ waitingFor: 'in-service', attempt: 0 });
    w.settle();
    w.sizes.min = w.sizes.desired; // scaled in to MinSize meanwhile

    await deliver(w, lastNudge().body);
    expect(deployment(w)?.standby).toMatchObject({ instanceIds: [], waiting: expect.any(String) });
    const room = lastNudge();
    expect(room.body).toMatchObject({ deploymentId: answer.deploymentId, waitingFor: 'room', attempt: 0 });
    expect(room.delaySeconds).toBeGreaterThanOrEqual(30);
    expect(room.delaySeconds).toBeLessThanOrEqual(60);

    await deliver(w, room.body);
    expect(lastNudge().body).toMatchObject({ waitingFor: 'room', attempt: 1 });
    expect(entered()).toHaveLength(1);

    w.sizes.min = 0;
    await deliver(w, lastNudge().body);
    expect(entered()).toHaveLength(2);
    expect(lastNudge().body).toMatchObject({ waitingFor: 'standby', attempt: 0 });
  });

  it('waiting for room, a nudge looks at the sizes before reading any command history', async () => {
    const { w } = await standbyDeployStarted(4, 0);
    w.settle();
    await deliver(w, lastNudge().body); // the canary's command sent
    const canary = w.sentFor('canary')[0] as SentCommand;
    w.finish(canary.commandId, NEW_SHA);
    await route(w.deps, w.statusEvent(canary)); // the canary returning
    w.settle();
    w.sizes.min = w.sizes.desired;
    await deliver(w, lastNudge().body);
    expect(lastNudge().body).toMatchObject({ waitingFor: 'room' });
    const listed = ssm.commandCalls(ListCommandsCommand).length;

    await deliver(w, lastNudge().body);

    expect(lastNudge().body).toMatchObject({ waitingFor: 'room', attempt: 1 });
    expect(ssm.commandCalls(ListCommandsCommand).length).toBe(listed);
  });

  it('counts copies of a nudge in one batch once: one look, one nudge after it', async () => {
    const { w } = await standbyDeployStarted(3, 1);
    const first = lastNudge().body;

    const response = await deliver(w, first, first, first);

    expect(response.batchItemFailures).toEqual([]);
    expect(sentNudges()).toHaveLength(2);
    expect(ssm.commandCalls(GetParametersByPathCommand).length).toBeLessThanOrEqual(2);
  });

  it('ignores a stale nudge (the step moved on), one for another deployment, and one after the deployment ended: nothing sent', async () => {
    const { w, answer } = await standbyDeployStarted(3, 1);
    const first = lastNudge().body;
    w.settle();
    await deliver(w, first); // step 0 → the canary's command
    const calls = () => [
      ssm.commandCalls(SendCommandCommand).length,
      entered().length,
      exited().length,
      sentNudges().length,
    ];
    const before = calls();

    const stale = await deliver(w, first);
    const other = await deliver(w, { ...first, deploymentId: 'd-aaaaaaaaaaaa', step: 1 });

    expect(stale.batchItemFailures).toEqual([]);
    expect(other.batchItemFailures).toEqual([]);
    expect(calls()).toEqual(before);
    expect(w.logs.info).toHaveBeenCalledWith(
      'standby nudge ignored',
      expect.objectContaining({ reason: `deployment ${answer.deploymentId} moved on from step 0 to 1` }),
    );
    expect(w.logs.info).toHaveBeenCalledWith(
      'standby nudge ignored',
      expect.objectContaining({ reason: 'deployment d-aaaaaaaaaaaa is not in flight in group web' }),
    );

    const canary = w.sentFor('canary')[0] as SentCommand;
    w.finish(canary.commandId, NEW_SHA, { [answer.canary]: { exitCode: 14, reason: 'cap deploy failed' } });
    await route(w.deps, w.statusEvent(canary));
    expect(lastDeployment(w)).toMatchObject({ phase: 'failed' });
    const ended = calls();

    await deliver(w, { ...first, step: 1 });
    expect(calls()).toEqual(ended);
  });

  it('moves a step once when a nudge and reconcile look at the same moment', async () => {
    const { w } = await standbyDeployStarted(3, 1);
    w.settle();

    await Promise.all([deliver(w, lastNudge().body), route(w.deps, fixture('scheduled'))]);

    expect(w.commands).toHaveLength(1);
    expect(deployment(w)).toMatchObject({ step: 1, standby: { stage: 'deploying' } });
  });

  it('refuses a nudge naming a group selfdeploy does not manage, reading and sending nothing', async () => {
    const { w, answer } = await standbyDeployStarted(3, 1);
    const reads = ssm.commandCalls(GetParametersByPathCommand).length;
    const nudges = sentNudges().length;

    const response = await deliver(w, {
      ...lastNudge().body,
      group: 'billing',
      deploymentId: answer.deploymentId,
    });

    expect(response.batchItemFailures).toHaveLength(1);
    expect(w.logs.error).toHaveBeenCalledWith(
      expect.any(String),
      expect.objectContaining({
        error: expect.objectContaining({
          message: 'standby nudge: group billing is not managed by selfdeploy',
        }),
      }),
    );
    expect(ssm.commandCalls(GetParametersByPathCommand)).toHaveLength(reads);
    expect(sentNudges()).toHaveLength(nudges);
  });

  it('rejects a malformed nudge naming every problem, and it alone fails', async () => {
    const w = world(2, 'standby');
    const malformed = {
      kind: NUDGE_KIND,
      version: 2,
      group: '',
      deploymentId: 'x',
      step: -1,
      waitingFor: 'soon',
      attempt: MAX_NUDGES_PER_STEP,
      extra: true,
    };

    expect(() => readNudgeMessage(malformed)).toThrow(
      /^standby nudge rejected: .*version.*; group.*; deploymentId: must be a deployment id \(d-…\); step.*; waitingFor.*; attempt.*extra/,
    );
    const response = await deliver(w, malformed);

    expect(response.batchItemFailures).toEqual([{ itemIdentifier: expect.any(String) }]);
    expect(ssm.calls()).toHaveLength(0);
    expect(autoScaling.calls()).toHaveLength(0);
    expect(sentNudges()).toEqual([]);
  });
});
