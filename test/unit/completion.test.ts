import {
  CompleteLifecycleActionCommand,
  DescribeScalingActivitiesCommand,
} from '@aws-sdk/client-auto-scaling';
import {
  GetCommandInvocationCommand,
  ListCommandInvocationsCommand,
  ListCommandsCommand,
} from '@aws-sdk/client-ssm';
import { route } from '../../functions/orchestrator/router';
import {
  activities,
  autoScaling,
  awsError,
  COMMAND_ID,
  fixture,
  harness,
  INSTANCE,
  LAUNCHED_AT,
  launchActivity,
  noActiveAction,
  OTHER,
  ssm,
} from './support';

const OTHER_TOKEN = '11111111-2222-3333-4444-555555555555';
const REQUESTED_AT = new Date('2026-11-26T10:01:02.000Z');

// What a launch sends: the sample command event carries exactly these.
const lifecycleParameters = fixture('command-success').detail.parameters as Record<string, string[]>;

function commandEvent(status: string, parameters: Record<string, string[]> = {}) {
  const event = fixture('command-success');
  event.detail.status = status;
  Object.assign(event.detail.parameters as object, parameters);
  return event;
}

/** INSTANCE's current wait began before the sample commands were requested. */
const currentWait = () => activities(launchActivity(INSTANCE, LAUNCHED_AT));

describe('a finished self-deploy', () => {
  it('continues the instance it ran on into service on Success, by instance id, with its group and hook from the event', async () => {
    const { deps, metrics } = harness();
    currentWait();
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});

    // A launch of a group with a release sends its exact SHA: nothing more to read on success.
    const result = await route(deps, commandEvent('Success', { revision: ['a'.repeat(40)] }));

    expect(result).toMatchObject({
      result: {
        outcome: 'lifecycle',
        instances: { [INSTANCE]: { outcome: 'completed', result: 'CONTINUE' } },
      },
    });
    expect(autoScaling).toHaveReceivedCommandTimes(DescribeScalingActivitiesCommand, 1);
    expect(autoScaling).toHaveReceivedCommandWith(DescribeScalingActivitiesCommand, {
      AutoScalingGroupName: 'web',
      MaxRecords: 100,
    });
    expect(autoScaling).toHaveReceivedCommandTimes(CompleteLifecycleActionCommand, 1);
    expect(autoScaling.commandCalls(CompleteLifecycleActionCommand)[0]?.args[0].input).toEqual({
      AutoScalingGroupName: 'web',
      LifecycleHookName: 'selfdeploy-launch',
      InstanceId: INSTANCE,
      LifecycleActionResult: 'CONTINUE',
    });
    expect(ssm.calls()).toHaveLength(0);
    expect(metrics).toEqual([
      { name: 'BootstrapSucceeded', group: 'web', value: 1, unit: 'Count' },
      { name: 'BootstrapDuration', group: 'web', value: 238, unit: 'Seconds' },
    ]);
  });

  it.each(['Failed', 'TimedOut', 'Cancelled'])(
    'abandons the instance when the command ends %s, logging the output tail and where the full output is',
    async (status) => {
      const { deps, metrics, logs } = harness();
      currentWait();
      autoScaling.on(CompleteLifecycleActionCommand).resolves({});
      ssm.on(GetCommandInvocationCommand).resolves({
        ResponseCode: 3,
        StatusDetails: status,
        StandardOutputContent: `${'x'.repeat(5000)}\nSELFDEPLOY_RESULT {"status":"failed","exitCode":9,"reason":"deploy command failed"}`,
        StandardErrorContent:
          'cap aborted!\nSSHKit::Runner::ExecuteError: Exception while executing as deploy@localhost',
      });

      const result = await route(deps, commandEvent(status));

      expect(result).toMatchObject({
        result: { instances: { [INSTANCE]: { outcome: 'completed', result: 'ABANDON' } } },
      });
      expect(autoScaling).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
        InstanceId: INSTANCE,
        LifecycleActionResult: 'ABANDON',
      });
      expect(ssm).toHaveReceivedCommandWith(GetCommandInvocationCommand, {
        CommandId: COMMAND_ID,
        InstanceId: INSTANCE,
      });
      expect(metrics[0]).toEqual({ name: 'BootstrapFailed', group: 'web', value: 1, unit: 'Count' });
      const [message, keys] = logs.error.mock.calls[0] as [string, Record<string, unknown>];
      expect(message).toBe(`self-deploy ${status}`);
      expect(keys).toMatchObject({
        instanceId: INSTANCE,
        commandId: COMMAND_ID,
        group: 'web',
        responseCode: 3,
        deployResult: { status: 'failed', exitCode: 9, reason: 'deploy command failed' },
        stderrTail: expect.stringContaining('ExecuteError'),
        fullOutput: expect.stringContaining(`/selfdeploy/commands, streams ${COMMAND_ID}/${INSTANCE}`),
      });
      expect((keys.stdoutTail as string).length).toBe(2000);
      expect(keys.stdoutTail).toMatch(/SELFDEPLOY_RESULT/);
    },
  );

  it("uses the group's own failure result", async () => {
    const { deps } = harness();
    activities({ ...launchActivity(INSTANCE, LAUNCHED_AT), AutoScalingGroupName: 'api' });
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});
    ssm.on(GetCommandInvocationCommand).resolves({ ResponseCode: 1 });

    await route(
      deps,
      commandEvent('Failed', { autoScalingGroupName: ['api'], lifecycleHookName: ['api-launch'] }),
    );

    expect(autoScaling).toHaveReceivedCommandWith(DescribeScalingActivitiesCommand, {
      AutoScalingGroupName: 'api',
    });
    expect(autoScaling).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
      AutoScalingGroupName: 'api',
      LifecycleHookName: 'api-launch',
      InstanceId: INSTANCE,
      LifecycleActionResult: 'CONTINUE',
    });
  });

  it.each(['TimedOut', 'Cancelled'])(
    'still completes a command that ended %s when its output cannot be read',
    async (status) => {
      const { deps } = harness();
      currentWait();
      autoScaling.on(CompleteLifecycleActionCommand).resolves({});
      ssm.on(GetCommandInvocationCommand).rejects(awsError('InvocationDoesNotExist', ''));

      const result = await route(deps, commandEvent(status));

      expect(result).toMatchObject({
        result: { instances: { [INSTANCE]: { outcome: 'completed', result: 'ABANDON' } } },
      });
    },
  );

  it('abandons an undeliverable command reported per invocation, reading its parameters with ListCommands', async () => {
    const { deps } = harness();
    currentWait();
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});
    ssm.on(ListCommandsCommand).resolves({
      Commands: [{ CommandId: COMMAND_ID, Parameters: lifecycleParameters, RequestedDateTime: REQUESTED_AT }],
    });
    ssm.on(GetCommandInvocationCommand).resolves({ ResponseCode: -1, StatusDetails: 'Undeliverable' });
    const event = fixture('invocation-timed-out');
    event.detail.status = 'Failed';

    const result = await route(deps, event);

    expect(ssm).toHaveReceivedCommandWith(ListCommandsCommand, { CommandId: COMMAND_ID });
    expect(result).toMatchObject({
      result: { instances: { [INSTANCE]: { outcome: 'completed', result: 'ABANDON' } } },
    });
    expect(autoScaling).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
      InstanceId: INSTANCE,
      LifecycleActionResult: 'ABANDON',
    });
  });

  it('abandons on an invocation-level TimedOut event', async () => {
    const { deps } = harness();
    currentWait();
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});
    ssm.on(ListCommandsCommand).resolves({
      Commands: [{ CommandId: COMMAND_ID, Parameters: lifecycleParameters, RequestedDateTime: REQUESTED_AT }],
    });
    ssm.on(GetCommandInvocationCommand).resolves({ ResponseCode: -1, StatusDetails: 'ExecutionTimedOut' });

    const result = await route(deps, fixture('invocation-timed-out'));

    expect(result).toMatchObject({
      result: { instances: { [INSTANCE]: { outcome: 'completed', result: 'ABANDON' } } },
    });
  });

  it('treats "No active Lifecycle Action found" as an action that already ended: logged, counted, no failure', async () => {
    const { deps, metrics, logs } = harness();
    currentWait();
    autoScaling.on(CompleteLifecycleActionCommand).rejects(noActiveAction());

    const result = await route(deps, fixture('command-success'));

    expect(result).toMatchObject({
      result: { instances: { [INSTANCE]: { outcome: 'expired', result: 'CONTINUE' } } },
    });
    // A repeated or late event must not count the bootstrap a second time.
    expect(metrics).toEqual([{ name: 'LifecycleActionExpired', group: 'web', value: 1, unit: 'Count' }]);
    expect(logs.info).toHaveBeenCalledWith(
      expect.stringContaining('already ended'),
      expect.objectContaining({ reason: expect.stringContaining('No active Lifecycle Action') }),
    );
    expect(logs.error).not.toHaveBeenCalled();
  });

  it('fails the invocation on any other completion error, so it is retried', async () => {
    const { deps } = harness();
    currentWait();
    autoScaling.on(CompleteLifecycleActionCommand).rejects(awsError('AccessDenied', 'not authorized'));

    await expect(route(deps, fixture('command-success'))).rejects.toThrow('not authorized');
  });

  it('completes a deploy the reconciler started (no token) by instance id, finding where it ran', async () => {
    const { deps } = harness();
    currentWait();
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});
    const event = commandEvent('Success', { lifecycleActionToken: [''] });
    event.resources = [];
    ssm.on(ListCommandInvocationsCommand).resolves({ CommandInvocations: [{ InstanceId: INSTANCE }] });

    await route(deps, event);

    expect(ssm).toHaveReceivedCommandWith(ListCommandInvocationsCommand, { CommandId: COMMAND_ID });
    expect(autoScaling).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
      AutoScalingGroupName: 'web',
      LifecycleHookName: 'selfdeploy-launch',
      InstanceId: INSTANCE,
      LifecycleActionResult: 'CONTINUE',
    });
  });

  it('reads the request time with ListCommands when the event lacks it', async () => {
    const { deps } = harness();
    currentWait();
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});
    ssm.on(ListCommandsCommand).resolves({
      Commands: [{ CommandId: COMMAND_ID, Parameters: lifecycleParameters, RequestedDateTime: REQUESTED_AT }],
    });
    const event = fixture('command-success');
    delete event.detail['requested-date-time'];

    const result = await route(deps, event);

    expect(ssm).toHaveReceivedCommandWith(ListCommandsCommand, { CommandId: COMMAND_ID });
    expect(result).toMatchObject({ result: { instances: { [INSTANCE]: { outcome: 'completed' } } } });
  });

  it('only logs a manual redeploy, which has no lifecycle action to complete', async () => {
    const { deps, logs } = harness();
    const event = commandEvent('Success', {
      autoScalingGroupName: [''],
      lifecycleHookName: [''],
      instanceId: [''],
      lifecycleActionToken: [''],
    });

    const result = await route(deps, event);

    expect(result).toMatchObject({ result: { outcome: 'manual-redeploy-finished', status: 'Success' } });
    expect(autoScaling.calls()).toHaveLength(0);
    expect(logs.info).toHaveBeenCalledWith(
      'manual redeploy Success',
      expect.objectContaining({ commandId: COMMAND_ID }),
    );
  });

  it.each([
    [
      'a status that is not final',
      (e: ReturnType<typeof fixture>) => Object.assign(e.detail, { status: 'InProgress' }),
    ],
    [
      'another document',
      (e: ReturnType<typeof fixture>) => Object.assign(e.detail, { 'document-name': 'AWS-RunShellScript' }),
    ],
  ])('ignores %s without calling AWS', async (_case, change) => {
    const { deps } = harness();
    const event = fixture('command-success');
    change(event);

    const result = await route(deps, event);

    expect(result).toMatchObject({ result: { outcome: 'ignored' } });
    expect(ssm.calls().length + autoScaling.calls().length).toBe(0);
  });
});

describe('a finished self-deploy completes only the current wait of the instance it ran on', () => {
  it("completes nothing for a command carrying another team's hook on a managed group", async () => {
    const { deps, metrics, logs } = harness();
    currentWait();
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});

    const result = await route(deps, commandEvent('Success', { lifecycleHookName: ['other-team-launch'] }));

    expect(result).toMatchObject({ result: { outcome: 'rejected' } });
    expect(autoScaling).not.toHaveReceivedCommand(CompleteLifecycleActionCommand);
    expect(metrics).toEqual([]);
    expect(logs.error).toHaveBeenCalledWith(
      "completes nothing: hook other-team-launch is not the group's selfdeploy hook selfdeploy-launch",
      expect.objectContaining({ commandId: COMMAND_ID, group: 'web' }),
    );
  });

  it('completes nothing for a command whose instanceId names the wait of another instance', async () => {
    const { deps, metrics, logs } = harness();
    currentWait();
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});

    const result = await route(deps, commandEvent('Success', { instanceId: [OTHER] }));

    expect(result).toMatchObject({ result: { instances: { [INSTANCE]: { outcome: 'rejected' } } } });
    expect(autoScaling).not.toHaveReceivedCommand(CompleteLifecycleActionCommand);
    expect(metrics).toEqual([]);
    expect(logs.error).toHaveBeenCalledWith(
      `completes nothing: the command names the wait of ${OTHER} but ran on ${INSTANCE}`,
      expect.objectContaining({ instanceId: INSTANCE }),
    );
  });

  it("never completes with the token a command carries, even when it names another instance's action", async () => {
    const { deps } = harness();
    currentWait();
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});

    await route(deps, commandEvent('Success', { lifecycleActionToken: [OTHER_TOKEN] }));

    // The wait completed is the one of the instance the command ran on, named by that instance.
    expect(autoScaling).toHaveReceivedCommandTimes(CompleteLifecycleActionCommand, 1);
    for (const call of autoScaling.commandCalls(CompleteLifecycleActionCommand)) {
      expect(call.args[0].input).not.toHaveProperty('LifecycleActionToken');
      expect(call.args[0].input).toMatchObject({ InstanceId: INSTANCE });
    }
  });

  it('completes nothing for a stale Success from an earlier wait of the instance', async () => {
    const { deps, metrics, logs } = harness();
    // The instance re-entered a wait (e.g. from the warm pool) after the command was requested.
    const reentered = new Date('2026-11-26T10:03:00.000Z');
    activities(launchActivity(INSTANCE, reentered, 'from warm pool'), launchActivity(INSTANCE, LAUNCHED_AT));
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});

    const result = await route(deps, fixture('command-success'));

    expect(result).toMatchObject({ result: { instances: { [INSTANCE]: { outcome: 'rejected' } } } });
    expect(autoScaling).not.toHaveReceivedCommand(CompleteLifecycleActionCommand);
    expect(metrics).toEqual([]);
    expect(logs.error).toHaveBeenCalledWith(
      expect.stringMatching(/^completes nothing: stale command: requested 2026-11-26T10:01:02.000Z, before/),
      expect.objectContaining({ instanceId: INSTANCE }),
    );
  });

  it("reads the group's activities only back to the command's request", async () => {
    const { deps } = harness();
    autoScaling
      .on(DescribeScalingActivitiesCommand)
      .resolvesOnce({
        Activities: [launchActivity(OTHER, new Date('2026-11-26T10:02:00.000Z'))],
        NextToken: 'page-2',
      })
      .resolvesOnce({
        Activities: [launchActivity('i-0aaaaaaaaaaaaaaaa', new Date('2026-11-26T09:00:00.000Z'))],
        NextToken: 'page-3',
      })
      .resolves({ Activities: [launchActivity(INSTANCE, LAUNCHED_AT)] });
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});

    const result = await route(deps, fixture('command-success'));

    // No launch of the instance since the command: it speaks for the current wait.
    expect(result).toMatchObject({ result: { instances: { [INSTANCE]: { outcome: 'completed' } } } });
    expect(autoScaling).toHaveReceivedCommandTimes(DescribeScalingActivitiesCommand, 2);
    expect(autoScaling.commandCalls(DescribeScalingActivitiesCommand)[1]?.args[0].input).toEqual({
      AutoScalingGroupName: 'web',
      MaxRecords: 100,
      NextToken: 'page-2',
    });
  });

  it("reads on past an old activity still in progress, since the instance's own newer launch may follow it", async () => {
    const { deps } = harness();
    // Auto Scaling lists activities in progress first: another instance's hook has waited an hour.
    autoScaling
      .on(DescribeScalingActivitiesCommand)
      .resolvesOnce({
        Activities: [
          launchActivity(OTHER, new Date('2026-11-26T09:00:00.000Z'), 'new', 'MidLifecycleAction'),
        ],
        NextToken: 'page-2',
      })
      .resolves({
        Activities: [
          launchActivity(
            INSTANCE,
            new Date('2026-11-26T10:03:00.000Z'),
            'from warm pool',
            'MidLifecycleAction',
          ),
        ],
      });
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});

    const result = await route(deps, fixture('command-success'));

    expect(result).toMatchObject({ result: { instances: { [INSTANCE]: { outcome: 'rejected' } } } });
    expect(autoScaling).not.toHaveReceivedCommand(CompleteLifecycleActionCommand);
  });

  it('treats each instance of a command that ran on several separately: only the instance it names is completed', async () => {
    const { deps } = harness();
    activities(launchActivity(OTHER, LAUNCHED_AT), launchActivity(INSTANCE, LAUNCHED_AT));
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});
    ssm
      .on(ListCommandInvocationsCommand)
      .resolves({ CommandInvocations: [{ InstanceId: INSTANCE }, { InstanceId: OTHER }] });
    const event = fixture('command-success');
    event.resources = [
      `arn:aws:ec2:us-west-2:123456789012:instance/${INSTANCE}`,
      `arn:aws:ec2:us-west-2:123456789012:instance/${OTHER}`,
    ];

    const result = await route(deps, event);

    expect(result).toMatchObject({
      result: {
        instances: { [INSTANCE]: { outcome: 'completed' }, [OTHER]: { outcome: 'rejected' } },
      },
    });
    expect(autoScaling).toHaveReceivedCommandTimes(CompleteLifecycleActionCommand, 1);
    expect(autoScaling).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, { InstanceId: INSTANCE });
  });

  it.each(['constructor', '__proto__', 'toString'])(
    'completes nothing for a command naming group %s, which is not managed',
    async (name) => {
      const { deps, logs } = harness();
      autoScaling.on(CompleteLifecycleActionCommand).resolves({});

      const result = await route(deps, commandEvent('Failed', { autoScalingGroupName: [name] }));

      expect(result).toMatchObject({ result: { outcome: 'rejected' } });
      expect(autoScaling.calls()).toHaveLength(0);
      expect(logs.error).toHaveBeenCalledWith(
        `completes nothing: group ${name} is not managed by selfdeploy`,
        expect.anything(),
      );
    },
  );
});

describe('a run that found another run of the same wait in progress', () => {
  it('completes nothing: it carries no verdict, the other run decides', async () => {
    const { deps, metrics, logs } = harness();
    currentWait();
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});
    ssm.on(GetCommandInvocationCommand).resolves({ ResponseCode: 13, StatusDetails: 'Failed' });

    const result = await route(deps, commandEvent('Failed'));

    expect(result).toMatchObject({ result: { instances: { [INSTANCE]: { outcome: 'no-verdict' } } } });
    expect(autoScaling).not.toHaveReceivedCommand(CompleteLifecycleActionCommand);
    expect(metrics).toEqual([]);
    expect(logs.info).toHaveBeenCalledWith(
      'another run for this wait is in progress; its own result decides',
      expect.objectContaining({ instanceId: INSTANCE, responseCode: 13 }),
    );
  });

  it('fails the invocation (Lambda retries) when the exit code of a failed run cannot be read, rather than guess', async () => {
    const { deps } = harness();
    currentWait();
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});
    ssm.on(GetCommandInvocationCommand).rejects(awsError('ThrottlingException', 'Rate exceeded'));

    await expect(route(deps, commandEvent('Failed'))).rejects.toThrow('Rate exceeded');
    expect(autoScaling).not.toHaveReceivedCommand(CompleteLifecycleActionCommand);
  });
});
