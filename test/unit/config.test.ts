import { managedGroup, parseConfig } from '../../functions/orchestrator/config';
import { ConfigError } from '../../functions/shared/errors';
import { WAIT_QUEUE_URL } from './support';

describe('SELFDEPLOY_CONFIG', () => {
  it('fills every omitted field with its documented default', () => {
    const config = parseConfig(
      JSON.stringify({
        documentName: 'SelfDeploy',
        waitQueueUrl: WAIT_QUEUE_URL,
        groups: { web: { lifecycleHookName: 'launch' } },
      }),
    );

    expect(config).toEqual({
      documentName: 'SelfDeploy',
      waitQueueUrl: WAIT_QUEUE_URL,
      executionTimeoutSeconds: 1800,
      agentWaitSeconds: 600,
      outputLogGroupName: '/selfdeploy/commands',
      redeployMaxConcurrency: '25%',
      redeployMaxErrors: '0',
      releasePath: '/selfdeploy',
      groups: {
        web: {
          lifecycleHookName: 'launch',
          environment: 'production',
          follow: 'release',
          deployWith: 'in-place',
          appUser: 'deploy',
          deployPath: '/var/www/app/deploy',
          appPath: '/var/www/app',
          healthCheckUrl: '',
          onFailure: 'ABANDON',
          warmPool: 'deploy-on-both',
          heartbeatTimeoutSeconds: 2520,
        },
      },
    });
  });

  it("assumes the heartbeat timeout the construct gives a hook with the configuration's own timings", () => {
    const config = parseConfig(
      JSON.stringify({
        documentName: 'SelfDeploy',
        waitQueueUrl: WAIT_QUEUE_URL,
        executionTimeoutSeconds: 900,
        agentWaitSeconds: 300,
        groups: {
          web: { lifecycleHookName: 'launch' },
          api: { lifecycleHookName: 'launch', heartbeatTimeoutSeconds: 1500 },
        },
      }),
    );

    // 300 s agent wait + 900 s deploy + 120 s completion grace, as infra/self-deploy.ts sizes the hook.
    expect(config.groups.web?.heartbeatTimeoutSeconds).toBe(1320);
    expect(config.groups.api?.heartbeatTimeoutSeconds).toBe(1500);
  });

  it('caps the assumed heartbeat timeout at the 2 hours a hook accepts', () => {
    const config = parseConfig(
      JSON.stringify({
        documentName: 'SelfDeploy',
        waitQueueUrl: WAIT_QUEUE_URL,
        executionTimeoutSeconds: 7000,
        agentWaitSeconds: 600,
        groups: { web: { lifecycleHookName: 'launch' } },
      }),
    );

    expect(config.groups.web?.heartbeatTimeoutSeconds).toBe(7200);
  });

  it.each<[string, string | undefined, RegExp]>([
    ['missing', undefined, /SELFDEPLOY_CONFIG is not set/],
    ['not JSON', '{documentName:', /SELFDEPLOY_CONFIG is not valid JSON/],
    [
      'without groups',
      JSON.stringify({ documentName: 'SelfDeploy', waitQueueUrl: WAIT_QUEUE_URL, groups: {} }),
      /name at least one Auto Scaling group/,
    ],
    [
      'with a group lacking its hook',
      JSON.stringify({ documentName: 'SelfDeploy', waitQueueUrl: WAIT_QUEUE_URL, groups: { web: {} } }),
      /groups\.web\.lifecycleHookName: Invalid input: expected string/,
    ],
    [
      'with a hostile environment',
      JSON.stringify({
        documentName: 'SelfDeploy',
        waitQueueUrl: WAIT_QUEUE_URL,
        groups: { web: { lifecycleHookName: 'h', environment: 'a b' } },
      }),
      /groups\.web\.environment: must match/,
    ],
    [
      'with a relative path',
      JSON.stringify({
        documentName: 'SelfDeploy',
        waitQueueUrl: WAIT_QUEUE_URL,
        groups: { web: { lifecycleHookName: 'h', appPath: 'var/www' } },
      }),
      /groups\.web\.appPath: must match/,
    ],
    [
      'with an unknown field (a typo must not be ignored)',
      JSON.stringify({
        documentName: 'SelfDeploy',
        waitQueueUrl: WAIT_QUEUE_URL,
        groups: { web: { lifecycleHookName: 'h', onFailur: 'CONTINUE' } },
      }),
      /Unrecognized key: "onFailur"/,
    ],
    [
      'with a heartbeat timeout Auto Scaling refuses',
      JSON.stringify({
        documentName: 'SelfDeploy',
        waitQueueUrl: WAIT_QUEUE_URL,
        groups: { web: { lifecycleHookName: 'h', heartbeatTimeoutSeconds: 9000 } },
      }),
      /heartbeatTimeoutSeconds: Too big/,
    ],
    [
      'with a health check that is not a loopback URL',
      JSON.stringify({
        documentName: 'SelfDeploy',
        waitQueueUrl: WAIT_QUEUE_URL,
        groups: { web: { lifecycleHookName: 'h', healthCheckUrl: 'http://example.com/up' } },
      }),
      /groups\.web\.healthCheckUrl: must match/,
    ],
  ])('is rejected when %s', (_case, raw, message) => {
    expect(() => parseConfig(raw)).toThrow(ConfigError);
    expect(() => parseConfig(raw)).toThrow(message);
  });
});

describe('managed groups', () => {
  const config = parseConfig(
    JSON.stringify({
      documentName: 'SelfDeploy',
      waitQueueUrl: WAIT_QUEUE_URL,
      groups: { web: { lifecycleHookName: 'launch', healthCheckUrl: 'http://localhost:3000/up' } },
    }),
  );

  it('are the configured ones, with their settings', () => {
    expect(managedGroup(config, 'web')).toMatchObject({
      lifecycleHookName: 'launch',
      healthCheckUrl: 'http://localhost:3000/up',
    });
  });

  it.each(['constructor', '__proto__', 'toString', 'hasOwnProperty'])(
    'never include %s, a name every object inherits',
    (name) => {
      expect(managedGroup(config, name)).toBeUndefined();
    },
  );
});
