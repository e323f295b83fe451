import {
  CompleteLifecycleActionCommand,
  DescribeScalingActivitiesCommand,
  RecordLifecycleActionHeartbeatCommand,
} from '@aws-sdk/client-auto-scaling';
import { SendMessageBatchCommand } from '@aws-sdk/client-sqs';
import {
  DescribeInstanceInformationCommand,
  ListCommandsCommand,
  SendCommandCommand,
} from '@aws-sdk/client-ssm';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import {
  AGENT_WAIT_KIND,
  type AgentWait,
  readWaitMessage,
  relookDelaySeconds,
  waitMessage,
} from '../../functions/orchestrator/agent-wait';
import { handleQueue, isQueueBatch } from '../../functions/orchestrator/queue';
import {
  activities,
  agentsOnline,
  agentWait,
  autoScaling,
  awsError,
  fixture,
  harness,
  INSTANCE,
  instanceId,
  launchActivity,
  launchEvent,
  NOW,
  noActiveAction,
  QUEUED_AT,
  queueRecord,
  sqs,
  ssm,
  TOKEN,
  tokenOf,
  WAIT_QUEUE_URL,
} from './support';

const NEW_COMMAND = 'aaaaaaaa-1111-2222-3333-444444444444';

let nextId = 0;
/** The next message of this test's batches. */
function record(body: unknown, fields: { sentAt?: number; receiveCount?: number } = {}): SQSRecord {
  nextId += 1;
  return queueRecord(body, nextId, fields);
}
const batch = (...records: SQSRecord[]): SQSEvent => ({ Records: records });
const waitRecord = (fields: Partial<AgentWait> = {}) => record(waitMessage(agentWait(fields)));

/** The waits put back on the queue, with their delays. */
function requeued(): { wait: AgentWait; delay: number | undefined }[] {
  return sqs.commandCalls(SendMessageBatchCommand).flatMap((call) =>
    (call.args[0].input.Entries ?? []).map((entry) => ({
      wait: readWaitMessage(JSON.parse(entry.MessageBody ?? '')),
      delay: entry.DelaySeconds,
    })),
  );
}

beforeEach(() => {
  nextId = 0;
});

describe('a batch from the queue', () => {
  it('sends the deploy to a launch whose agent is online, and sleeps for nothing', async () => {
    const { deps, sleeps, metrics } = harness();
    agentsOnline(INSTANCE);
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: NEW_COMMAND } });

    const response = await handleQueue(deps, batch(record(launchEvent())));

    expect(response).toEqual({ batchItemFailures: [] });
    const sent = ssm.commandCalls(SendCommandCommand);
    expect(sent).toHaveLength(1);
    expect(sent[0]?.args[0].input.Parameters?.lifecycleActionToken).toEqual([TOKEN]);
    expect(sleeps).toEqual([]);
    // The wait began when the event reached the queue, not when the batch ran.
    expect(metrics).toContainEqual({ name: 'AgentWait', group: 'web', value: 3, unit: 'Seconds' });
  });

  it('puts a launch whose agent has not registered back on the queue, due in a second or two, without a SendCommand', async () => {
    const { deps, sleeps } = harness();
    agentsOnline();

    const response = await handleQueue(deps, batch(record(launchEvent())));

    expect(response).toEqual({ batchItemFailures: [] });
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(0);
    const [entry] = requeued();
    expect(sqs.commandCalls(SendMessageBatchCommand)[0]?.args[0].input.QueueUrl).toBe(WAIT_QUEUE_URL);
    expect(entry?.wait).toEqual({
      instanceId: INSTANCE,
      groupName: 'web',
      hook: 'selfdeploy-launch',
      token: TOKEN,
      place: 'AutoScalingGroup',
      waitStart: QUEUED_AT,
      attempt: 1,
      deadline: QUEUED_AT + 600_000,
      lastHeartbeat: QUEUED_AT,
    });
    expect(entry?.delay).toBeGreaterThanOrEqual(1);
    expect(entry?.delay).toBeLessThanOrEqual(2);
    expect(sleeps).toEqual([]);
  });

  it('looks at up to 50 agents per DescribeInstanceInformation: 120 launches cost 3 calls', async () => {
    const { deps } = harness();
    const ids = Array.from({ length: 120 }, (_, n) => instanceId(n + 1));
    agentsOnline(...ids.slice(0, 60));
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: NEW_COMMAND } });

    const response = await handleQueue(
      deps,
      batch(...ids.map((id, n) => record(launchEvent(id, tokenOf(n + 1))))),
    );

    expect(response).toEqual({ batchItemFailures: [] });
    const looks = ssm
      .commandCalls(DescribeInstanceInformationCommand)
      .map((call) => call.args[0].input.Filters?.[0]?.Values?.length);
    expect(looks).toEqual([50, 50, 20]);
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(60);
    expect(requeued()).toHaveLength(60);
    // SendMessageBatch takes at most 10 entries.
    expect(sqs.commandCalls(SendMessageBatchCommand)).toHaveLength(6);
  });

  it('sends once for a launch delivered twice in one batch', async () => {
    const { deps } = harness();
    agentsOnline(INSTANCE);
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: NEW_COMMAND } });

    const response = await handleQueue(deps, batch(record(launchEvent()), record(launchEvent())));

    expect(response).toEqual({ batchItemFailures: [] });
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(1);
  });

  it('starts no second deploy for a wait whose deploy was already sent (a copy delivered in another batch)', async () => {
    const { deps } = harness();
    agentsOnline(INSTANCE);
    ssm.on(ListCommandsCommand).resolves({
      Commands: [
        {
          CommandId: NEW_COMMAND,
          Status: 'InProgress',
          RequestedDateTime: new Date(NOW - 1_000),
          Parameters: { lifecycleActionToken: [TOKEN] },
        },
      ],
    });

    const response = await handleQueue(deps, batch(waitRecord()));

    expect(response).toEqual({ batchItemFailures: [] });
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(0);
    expect(requeued()).toHaveLength(0);
  });

  it('reports exactly the message that failed; the others are done', async () => {
    const { deps } = harness();
    const [a, b, c] = [instanceId(1), instanceId(2), instanceId(3)];
    agentsOnline(a, b, c);
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    ssm.on(SendCommandCommand).callsFake((input) => {
      if (input.InstanceIds?.[0] === b) throw awsError('InternalServerError', 'SSM had a bad moment');
      return { Command: { CommandId: NEW_COMMAND } };
    });
    const records = [
      record(launchEvent(a, tokenOf(1))),
      record(launchEvent(b, tokenOf(2))),
      record(launchEvent(c, tokenOf(3))),
    ];

    const response = await handleQueue(deps, batch(...records));

    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: records[1]?.messageId }] });
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(3);
  });

  it('fails every message, without failing the invocation, when the agents cannot be looked at', async () => {
    const { deps } = harness();
    ssm.on(DescribeInstanceInformationCommand).rejects(awsError('ThrottlingException', 'Rate exceeded'));
    const records = [
      record(launchEvent(instanceId(1), tokenOf(1))),
      record(launchEvent(instanceId(2), tokenOf(2))),
    ];

    const response = await handleQueue(deps, batch(...records));

    expect(response.batchItemFailures.map((failure) => failure.itemIdentifier)).toEqual(
      records.map((r) => r.messageId),
    );
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(0);
  });

  it('reports a wait SQS would not take back, so that its message comes back instead of being lost', async () => {
    const { deps } = harness();
    agentsOnline();
    sqs.on(SendMessageBatchCommand).resolves({
      Successful: [],
      Failed: [{ Id: '0', Code: 'InternalError', SenderFault: false, Message: 'try again' }],
    });
    const message = waitRecord();

    const response = await handleQueue(deps, batch(message));

    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: message.messageId }] });
  });

  it('leaves a wait past its deadline to the reconciler: nothing sent, nothing queued', async () => {
    const { deps, logs } = harness();
    agentsOnline();

    const response = await handleQueue(deps, batch(waitRecord({ deadline: NOW - 1 })));

    expect(response).toEqual({ batchItemFailures: [] });
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(0);
    expect(requeued()).toHaveLength(0);
    expect(logs.warn).toHaveBeenCalledWith(
      'SSM agent not registered yet; leaving this instance to the reconciler',
      expect.objectContaining({ instanceId: INSTANCE }),
    );
  });

  it('heartbeats a long wait before its hook could time out, and drops a wait whose action has ended', async () => {
    const { deps } = harness();
    agentsOnline();
    // The api group's hook times out after 60 s without a heartbeat; the last was 50 s ago.
    const api = { groupName: 'api', hook: 'api-launch', lastHeartbeat: NOW - 50_000 };
    autoScaling.on(RecordLifecycleActionHeartbeatCommand).resolvesOnce({}).rejectsOnce(noActiveAction());

    const response = await handleQueue(
      deps,
      batch(waitRecord(api), waitRecord({ ...api, instanceId: instanceId(9), token: tokenOf(9) })),
    );

    expect(response).toEqual({ batchItemFailures: [] });
    expect(autoScaling.commandCalls(RecordLifecycleActionHeartbeatCommand)).toHaveLength(2);
    const [kept] = requeued();
    expect(requeued()).toHaveLength(1);
    expect(kept?.wait.lastHeartbeat).toBe(NOW);
  });

  it('grows the delay between looks, with jitter, up to 3 s; two copies of one wait get the same delay', async () => {
    const { deps } = harness();
    agentsOnline();
    const attempts = [0, 1, 2, 3, 4, 10];

    await handleQueue(
      deps,
      batch(
        ...attempts.map((attempt) =>
          waitRecord({ attempt, instanceId: instanceId(attempt + 1), token: tokenOf(attempt + 1) }),
        ),
      ),
    );

    const ceilings = attempts.map((attempt) => Math.min(3, 2 * 1.5 ** attempt));
    const delays = requeued().map((entry) => entry.delay ?? 0);
    delays.forEach((delay, n) => {
      expect(delay).toBeGreaterThanOrEqual(Math.floor((ceilings[n] ?? 0) / 2));
      expect(delay).toBeLessThanOrEqual(Math.ceil(ceilings[n] ?? 0));
    });
    // Waits of other launches spread out; copies of one wait (same token, same attempt) do not.
    const spread = Array.from({ length: 20 }, (_, n) =>
      relookDelaySeconds(agentWait({ attempt: 5, token: tokenOf(n + 1) }), 600),
    );
    expect(new Set(spread).size).toBeGreaterThan(1);
    expect(relookDelaySeconds(agentWait({ attempt: 5 }), 600)).toBe(
      relookDelaySeconds(agentWait({ attempt: 5 }), 600),
    );
  });

  it('rejects, and sends nothing for, a wait message naming a group or hook selfdeploy does not manage', async () => {
    const { deps, logs } = harness();
    agentsOnline(INSTANCE);
    const foreign = waitRecord({ groupName: 'other-team' });
    const wrongHook = waitRecord({ hook: 'someone-elses-hook' });

    const response = await handleQueue(deps, batch(foreign, wrongHook));

    expect(response.batchItemFailures.map((failure) => failure.itemIdentifier)).toEqual([
      foreign.messageId,
      wrongHook.messageId,
    ]);
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(0);
    expect(ssm.commandCalls(ListCommandsCommand)).toHaveLength(0);
    expect(logs.error).toHaveBeenCalledWith(
      expect.stringContaining('failed'),
      expect.objectContaining({
        error: expect.objectContaining({
          message: expect.stringContaining('group other-team is not managed'),
        }),
      }),
    );
  });

  it('names every problem of a malformed wait message at once, and sends nothing', async () => {
    const { deps, logs } = harness();
    const malformed = record({
      kind: AGENT_WAIT_KIND,
      version: 1,
      instanceId: 'i-nope',
      group: 'web',
      hook: 'selfdeploy-launch',
      token: 'not-a-token',
      place: 'Elsewhere',
      waitStart: 'yesterday',
      attempt: -1,
      deadline: new Date(NOW).toISOString(),
      lastHeartbeat: new Date(NOW).toISOString(),
    });
    const notJson = record('{"kind":');

    const response = await handleQueue(deps, batch(malformed, notJson));

    expect(response.batchItemFailures).toHaveLength(2);
    expect(ssm.calls()).toHaveLength(0);
    const message = String((logs.error.mock.calls[0]?.[1] as { error: Error } | undefined)?.error.message);
    for (const field of ['instanceId', 'token', 'place', 'waitStart', 'attempt']) {
      expect(message).toContain(field);
    }
  });

  it('finishes the status events of a batch with one scan of the group’s scaling activities', async () => {
    const { deps } = harness();
    const ids = [instanceId(1), instanceId(2), instanceId(3)];
    activities(...ids.map((id) => launchActivity(id, new Date(NOW - 600_000), 'new', 'InProgress')));
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});
    const events = ids.map((id, n) => {
      const event = fixture('command-success');
      event.detail['command-id'] = tokenOf(100 + n);
      event.resources = [`arn:aws:ec2:us-west-2:123456789012:instance/${id}`];
      const parameters = event.detail.parameters as Record<string, string[]>;
      parameters.instanceId = [id];
      return record(event);
    });

    const response = await handleQueue(deps, batch(...events));

    expect(response).toEqual({ batchItemFailures: [] });
    expect(autoScaling.commandCalls(DescribeScalingActivitiesCommand)).toHaveLength(1);
    expect(
      autoScaling
        .commandCalls(CompleteLifecycleActionCommand)
        .map((call) => [call.args[0].input.InstanceId, call.args[0].input.LifecycleActionResult]),
    ).toEqual(ids.map((id) => [id, 'CONTINUE']));
  });
});

describe('what the handler treats as a batch from the queue', () => {
  it('is a list of SQS records only', () => {
    expect(isQueueBatch(batch(record(launchEvent())))).toBe(true);
    expect(isQueueBatch(fixture('launch'))).toBe(false);
    expect(isQueueBatch({ Records: [] })).toBe(false);
    expect(isQueueBatch({ Records: [{ eventSource: 'aws:sns' }] })).toBe(false);
  });
});
