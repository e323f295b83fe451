import { CompleteLifecycleActionCommand } from '@aws-sdk/client-auto-scaling';
import {
  GetCommandInvocationCommand,
  ListCommandInvocationsCommand,
  ListCommandsCommand,
} from '@aws-sdk/client-ssm';
import { route } from '../../functions/orchestrator/router';
import {
  autoScaling,
  awsError,
  COMMAND_ID,
  fixture,
  harness,
  INSTANCE,
  noActiveAction,
  ssm,
  TOKEN,
} from './support';

// What a launch sends: the sample command event carries exactly these.
const lifecycleParameters = fixture('command-success').detail.parameters as Record<string, string[]>;

function commandEvent(status: string) {
  const event = fixture('command-success');
  event.detail.status = status;
  return event;
}

describe('a finished self-deploy', () => {
  it('continues the instance into service on Success, reading the lifecycle context from the event alone', async () => {
    const { deps, metrics } = harness();
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});

    const result = await route(deps, fixture('command-success'));

    expect(result).toMatchObject({ result: { outcome: 'completed', result: 'CONTINUE' } });
    expect(autoScaling).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
      AutoScalingGroupName: 'web',
      LifecycleHookName: 'selfdeploy-launch',
      LifecycleActionToken: TOKEN,
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
      autoScaling.on(CompleteLifecycleActionCommand).resolves({});
      ssm.on(GetCommandInvocationCommand).resolves({
        ResponseCode: 3,
        StatusDetails: status,
        StandardOutputContent: `${'x'.repeat(5000)}\nSELFDEPLOY_RESULT {"status":"failed","exitCode":9,"reason":"deploy command failed"}`,
        StandardErrorContent:
          'cap aborted!\nSSHKit::Runner::ExecuteError: Exception while executing as deploy@localhost',
      });

      const result = await route(deps, commandEvent(status));

      expect(result).toMatchObject({ result: { outcome: 'completed', result: 'ABANDON' } });
      expect(autoScaling).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
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
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});
    ssm.on(GetCommandInvocationCommand).resolves({});
    const event = commandEvent('Failed');
    Object.assign(event.detail.parameters as object, {
      autoScalingGroupName: ['api'],
      lifecycleHookName: ['api-launch'],
    });

    await route(deps, event);

    expect(autoScaling).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
      AutoScalingGroupName: 'api',
      LifecycleActionResult: 'CONTINUE',
    });
  });

  it('still completes when the failure output cannot be read', async () => {
    const { deps } = harness();
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});
    ssm.on(GetCommandInvocationCommand).rejects(awsError('InvocationDoesNotExist', ''));

    const result = await route(deps, commandEvent('Failed'));

    expect(result).toMatchObject({ result: { outcome: 'completed', result: 'ABANDON' } });
  });

  it('abandons an undeliverable command reported per invocation, reading its parameters with ListCommands', async () => {
    const { deps } = harness();
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});
    ssm
      .on(ListCommandsCommand)
      .resolves({ Commands: [{ CommandId: COMMAND_ID, Parameters: lifecycleParameters }] });
    ssm.on(GetCommandInvocationCommand).resolves({ ResponseCode: -1, StatusDetails: 'Undeliverable' });
    const event = fixture('invocation-timed-out');
    event.detail.status = 'Failed';

    const result = await route(deps, event);

    expect(ssm).toHaveReceivedCommandWith(ListCommandsCommand, { CommandId: COMMAND_ID });
    expect(result).toMatchObject({
      result: { outcome: 'completed', result: 'ABANDON', instanceIds: [INSTANCE] },
    });
    expect(autoScaling).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
      LifecycleActionToken: TOKEN,
      LifecycleActionResult: 'ABANDON',
    });
  });

  it('abandons on an invocation-level TimedOut event', async () => {
    const { deps } = harness();
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});
    ssm
      .on(ListCommandsCommand)
      .resolves({ Commands: [{ CommandId: COMMAND_ID, Parameters: lifecycleParameters }] });
    ssm.on(GetCommandInvocationCommand).resolves({ ResponseCode: -1, StatusDetails: 'ExecutionTimedOut' });

    const result = await route(deps, fixture('invocation-timed-out'));

    expect(result).toMatchObject({ result: { outcome: 'completed', result: 'ABANDON' } });
  });

  it('treats "No active Lifecycle Action found" as an action that already ended: logged, counted, no failure', async () => {
    const { deps, metrics, logs } = harness();
    autoScaling.on(CompleteLifecycleActionCommand).rejects(noActiveAction());

    const result = await route(deps, fixture('command-success'));

    expect(result).toMatchObject({ result: { outcome: 'expired', result: 'CONTINUE' } });
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
    autoScaling.on(CompleteLifecycleActionCommand).rejects(awsError('AccessDenied', 'not authorized'));

    await expect(route(deps, fixture('command-success'))).rejects.toThrow('not authorized');
  });

  it('completes a deploy the reconciler started (no token) by instance id', async () => {
    const { deps } = harness();
    autoScaling.on(CompleteLifecycleActionCommand).resolves({});
    const event = fixture('command-success');
    (event.detail.parameters as Record<string, string[]>).lifecycleActionToken = [''];
    event.resources = [];
    ssm.on(ListCommandInvocationsCommand).resolves({ CommandInvocations: [{ InstanceId: INSTANCE }] });

    await route(deps, event);

    expect(autoScaling).toHaveReceivedCommandWith(CompleteLifecycleActionCommand, {
      AutoScalingGroupName: 'web',
      LifecycleHookName: 'selfdeploy-launch',
      InstanceId: INSTANCE,
      LifecycleActionResult: 'CONTINUE',
    });
  });

  it('only logs a manual redeploy, which has no lifecycle action to complete', async () => {
    const { deps, logs } = harness();
    const event = fixture('command-success');
    Object.assign(event.detail.parameters as object, {
      autoScalingGroupName: [''],
      lifecycleHookName: [''],
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
