import type { Context } from 'aws-lambda';
import { InvalidInputError } from '../../functions/shared/errors';
import { autoScaling, awsCallCount, baseConfig, fixture, ssm, WAIT_QUEUE_URL } from './support';

// The handler reads its configuration at cold start, so it is set before the module loads.
process.env.SELFDEPLOY_CONFIG = JSON.stringify(baseConfig);
process.env.AWS_REGION = 'us-west-2';
process.env.POWERTOOLS_LOG_LEVEL = 'SILENT';
const { handler } =
  require('../../functions/orchestrator/handler') as typeof import('../../functions/orchestrator/handler');

const context = {
  functionName: 'selfdeploy-orchestrator',
  awsRequestId: 'c6af9ac6-7b61-11e6-9a41-93e812345678',
  getRemainingTimeInMillis: () => 60_000,
} as unknown as Context;

const launch = () => fixture('launch');
const withDetail = (change: Record<string, unknown>) => {
  const event = launch();
  Object.assign(event.detail, change);
  return event;
};
const without = (key: string) => {
  const event = launch();
  delete event.detail[key];
  return event;
};

beforeEach(() => {
  ssm.reset();
  autoScaling.reset();
});

describe('input the handler refuses, with one line and zero AWS calls', () => {
  it.each<[string, unknown, RegExp]>([
    ['null', null, /expected a JSON object .* got null/],
    ['a string', 'redeploy web', /expected a JSON object .* got a string/],
    ['an array', [launch()], /got an array/],
    ['an empty object', {}, /unrecognised input with keys \[\]/],
    [
      'an unknown action',
      { action: 'destroy' },
      /unknown action "destroy": expected one of redeploy, reconcile/,
    ],
    ['a misspelt action key', { Action: 'redeploy' }, /unrecognised input with keys \["Action"\]/],
    [
      'a redeploy naming no target',
      { action: 'redeploy' },
      /name exactly one of instanceIds or autoScalingGroupName/,
    ],
    [
      'a redeploy naming both targets',
      { action: 'redeploy', autoScalingGroupName: 'web', instanceIds: ['i-1234567890abcdef0'] },
      /name exactly one of/,
    ],
    [
      'shell metacharacters in a redeploy revision',
      { action: 'redeploy', autoScalingGroupName: 'web', revision: 'main && rm -rf /' },
      /revision: must match/,
    ],
    [
      'an option-like redeploy revision',
      { action: 'redeploy', autoScalingGroupName: 'web', revision: '--output=/etc/passwd' },
      /revision: must match/,
    ],
    [
      'command substitution in a redeploy revision',
      { action: 'redeploy', autoScalingGroupName: 'web', revision: '$(id)' },
      /revision: must match/,
    ],
    [
      'a malformed instance id',
      { action: 'redeploy', instanceIds: ['i-123; reboot'] },
      /instanceIds\.0: must be an EC2 instance id/,
    ],
    ['an empty instance list', { action: 'redeploy', instanceIds: [] }, /instanceIds: Too small/],
    ['an unknown key in an action', { action: 'reconcile', force: true }, /Unrecognized key: "force"/],
    [
      'an unmanaged group to redeploy',
      { action: 'redeploy', autoScalingGroupName: 'batch' },
      /not managed by selfdeploy/,
    ],
    [
      'a wrong detail-type',
      { source: 'aws.ec2', 'detail-type': 'EC2 Instance State-change Notification', detail: {} },
      /unsupported event source "aws.ec2"/,
    ],
    [
      'a lifecycle event with an unknown detail-type',
      { ...launch(), 'detail-type': 'EC2 Instance Launch Successful' },
      /detail-type: Invalid option/,
    ],
    ['a lifecycle event without a token', without('LifecycleActionToken'), /detail\.LifecycleActionToken/],
    ['a lifecycle event without an instance', without('EC2InstanceId'), /detail\.EC2InstanceId/],
    [
      'a mistyped instance id',
      withDetail({ EC2InstanceId: 12345 }),
      /detail\.EC2InstanceId: Invalid input: expected string/,
    ],
    [
      'a hostile instance id',
      withDetail({ EC2InstanceId: 'i-123`reboot`' }),
      /detail\.EC2InstanceId: must be an EC2 instance id/,
    ],
    [
      'a token that is not a UUID',
      withDetail({ LifecycleActionToken: 'x; rm -rf /' }),
      /LifecycleActionToken: must be a lifecycle action token/,
    ],
    [
      'an unknown transition',
      withDetail({ LifecycleTransition: 'autoscaling:EC2_INSTANCE_REBOOTING' }),
      /LifecycleTransition/,
    ],
    [
      'metadata over 4000 characters',
      withDetail({ NotificationMetadata: 'x'.repeat(4001) }),
      /NotificationMetadata: Too big/,
    ],
    [
      'a hostile group name',
      withDetail({ AutoScalingGroupName: 'web$(reboot)' }),
      /AutoScalingGroupName: must match/,
    ],
    [
      'a status event without a command id',
      (() => {
        const event = fixture('command-success');
        delete event.detail['command-id'];
        return event;
      })(),
      /detail\.command-id/,
    ],
    [
      'a scheduled event from elsewhere',
      { source: 'aws.events', 'detail-type': 'Something Else' },
      /detail-type/,
    ],
  ])('%s', async (_case, input, message) => {
    const failure = handler(input, context);

    await expect(failure).rejects.toBeInstanceOf(InvalidInputError);
    await expect(failure).rejects.toThrow(message);
    await failure.catch((error: Error) => expect(error.message).not.toContain('\n'));
    expect(awsCallCount()).toBe(0);
  });
});

describe('the handler', () => {
  it('returns the summary the Lambda console shows for a test notification', async () => {
    await expect(handler(fixture('test-notification'), context)).resolves.toEqual({
      kind: 'test-notification',
      ignored: true,
    });
  });

  it('fails its cold start with one clear message when the configuration is invalid', () => {
    const previous = process.env.SELFDEPLOY_CONFIG;
    process.env.SELFDEPLOY_CONFIG = JSON.stringify({
      documentName: 'SelfDeploy',
      waitQueueUrl: WAIT_QUEUE_URL,
      groups: { web: { environment: 'prod;' } },
    });
    try {
      jest.isolateModules(() => {
        // A fresh module registry has its own ConfigError class, so match by name and message.
        expect(() => require('../../functions/orchestrator/handler')).toThrow(
          expect.objectContaining({
            name: 'ConfigError',
            message: expect.stringMatching(
              /^SELFDEPLOY_CONFIG is invalid: .*groups\.web\.environment: must match/,
            ),
          }),
        );
      });
    } finally {
      process.env.SELFDEPLOY_CONFIG = previous;
    }
  });
});
