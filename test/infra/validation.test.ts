import { Duration } from 'aws-cdk-lib';
import { SelfDeploy, type SelfDeployProps, SelfDeployPropsError } from '../../infra/self-deploy';
import { testStack } from './helpers';

// Construction throws before anything is synthesized, so each case is cheap.
const build = (props: Partial<SelfDeployProps>) => () =>
  new SelfDeploy(testStack(), 'SelfDeploy', { groups: [{ autoScalingGroup: 'web' }], ...props });

/** The one error a construction throws. */
const errorOf = (props: Partial<SelfDeployProps>): Error => {
  try {
    build(props)();
  } catch (error) {
    return error as Error;
  }
  throw new Error('the settings were accepted');
};

describe('impossible or unsafe settings are refused at synth, saying what to change', () => {
  it('no groups', () => {
    expect(build({ groups: [] })).toThrow('groups is empty: name at least one Auto Scaling group');
  });

  it('the same group twice', () => {
    expect(build({ groups: [{ autoScalingGroup: 'web' }, { autoScalingGroup: 'web' }] })).toThrow(
      'group web is listed twice',
    );
  });

  it('agent wait + execution timeout longer than any hook can wait', () => {
    expect(build({ executionTimeout: Duration.hours(2), agentWait: Duration.minutes(10) })).toThrow(
      'agentWait + executionTimeout is 7800 s, but a lifecycle hook waits at most 7200 s between heartbeats: ' +
        'lower executionTimeout or agentWait',
    );
  });

  it('a MaximumConcurrency an event source mapping does not take', () => {
    expect(build({ maxConcurrency: 1 })).toThrow(
      "maxConcurrency is 1: an event source mapping's MaximumConcurrency is a whole number from 2 to 1000",
    );
    expect(build({ maxConcurrency: 1001 })).toThrow('maxConcurrency is 1001');
  });

  it('a reserved concurrency below what the two mappings may run together, which would throttle them', () => {
    expect(build({ reservedConcurrency: 3 })).toThrow(
      "reservedConcurrency 3 is below 2 × maxConcurrency (4): each of the 2 queues' mappings may run maxConcurrency executions, and they would be throttled by the function's own limit; lower maxConcurrency or reserve more",
    );
    expect(build({ reservedConcurrency: 10, maxConcurrency: 5 })).not.toThrow();
  });

  it('an execution timeout the orchestrator does not accept', () => {
    expect(build({ executionTimeout: Duration.seconds(20) })).toThrow(
      'executionTimeout is 20 s: give at least 30 s',
    );
  });

  it('a heartbeat timeout that does not cover the deploy', () => {
    expect(build({ groups: [{ autoScalingGroup: 'web', heartbeatTimeout: Duration.minutes(20) }] })).toThrow(
      'group web: heartbeatTimeout is 1200 s; it must cover agentWait + executionTimeout (2400 s)',
    );
  });

  it('a heartbeat timeout over two hours', () => {
    expect(build({ groups: [{ autoScalingGroup: 'web', heartbeatTimeout: Duration.hours(3) }] })).toThrow(
      'be at most 7200 s',
    );
  });

  it('the deploy checkout in the directory Capistrano deploys into', () => {
    expect(
      build({ groups: [{ autoScalingGroup: 'web', deployPath: '/srv/app', appPath: '/srv/app' }] }),
    ).toThrow('group web: deployPath and appPath are both /srv/app');
  });

  it('root as the app user, which the instance script refuses on every launch', () => {
    expect(build({ groups: [{ autoScalingGroup: 'web', appUser: 'root' }] })).toThrow(
      'group web: appUser is root, which the instance script refuses (every launch would fail)',
    );
  });

  it('a health-check URL that is not on the instance itself', () => {
    expect(build({ groups: [{ autoScalingGroup: 'web', healthCheckUrl: 'http://example.com/up' }] })).toThrow(
      /group web: healthCheckUrl: must match \^\$\|\^https\?:\/\/\(127/,
    );
  });

  it('a reconcile interval that is not whole minutes', () => {
    expect(build({ reconcileInterval: Duration.seconds(90) })).toThrow(
      'reconcileInterval is 90 s: give a whole number of minutes',
    );
  });

  it('a reconciler slower than the hook', () => {
    expect(
      build({
        executionTimeout: Duration.minutes(5),
        agentWait: Duration.minutes(1),
        reconcileInterval: Duration.minutes(10),
      }),
    ).toThrow('reconcileInterval (600 s) is not shorter than the shortest heartbeatTimeout (480 s)');
  });

  it('a function timeout Lambda does not allow', () => {
    expect(build({ functionTimeout: Duration.minutes(20) })).toThrow('functionTimeout is 1200 s');
  });

  it('a malformed alarm e-mail address', () => {
    expect(build({ alarmEmail: 'ops' })).toThrow('alarmEmail "ops" is not an e-mail address');
  });

  it('a document name with a prefix SSM reserves', () => {
    expect(build({ documentName: 'AWS-SelfDeploy' })).toThrow(
      'documentName "AWS-SelfDeploy" starts with a prefix SSM reserves for AWS',
    );
  });

  it('a deploy-key encryption key without a deploy key, or given by alias', () => {
    expect(build({ deployKeyEncryptionKey: 'arn:aws:kms:eu-west-1:123456789012:alias/deploy' })).toThrow(
      /is not a KMS key ARN .*; deployKeyEncryptionKey is set but document\.deployKeyParameterName is not/,
    );
  });

  it('settings the SelfDeploy document or the orchestrator would reject', () => {
    expect(build({ groups: [{ autoScalingGroup: 'web', environment: 'Production!' }] })).toThrow(
      /^selfdeploy settings are invalid: group web: environment: must match/,
    );
    expect(build({ groups: [{ autoScalingGroup: 'web', appUser: 'Root User' }] })).toThrow(
      /group web: appUser: must match/,
    );
    expect(build({ groups: [{ autoScalingGroup: 'web group' }] })).toThrow(
      /group web group: autoScalingGroupName "web group" does not match/,
    );
    expect(build({ groups: [{ autoScalingGroup: 'web', lifecycleHookName: 'deploy hook' }] })).toThrow(
      /group web: lifecycleHookName: must match/,
    );
    expect(build({ documentName: 'x' })).toThrow(/documentName: must be an SSM document name/);
    expect(build({ redeployMaxConcurrency: '0' })).toThrow(/redeployMaxConcurrency/);
  });

  it('a bootstrap budget the bootstrap-time alarm could never see exceeded', () => {
    expect(build({ groups: [{ autoScalingGroup: 'web', bootstrapBudget: Duration.minutes(30) }] })).toThrow(
      'group web: bootstrapBudget is 1800 s: give at least 1 s and less than executionTimeout (1800 s)',
    );
    expect(build({ groups: [{ autoScalingGroup: 'web', bootstrapBudget: Duration.seconds(0) }] })).toThrow(
      'group web: bootstrapBudget is 0 s',
    );
  });

  it('a failure streak that is not a whole number of bootstraps', () => {
    expect(build({ failureStreak: 0 })).toThrow(
      'failureStreak is 0: give a whole number of failed bootstraps, at least 1',
    );
    expect(build({ failureStreak: 2.5 })).toThrow('failureStreak is 2.5');
  });

  it('a runbook base URL an alarm description could not link from', () => {
    expect(build({ runbookBaseUrl: 'docs/operations.md' })).toThrow(
      'runbookBaseUrl "docs/operations.md" is not an http(s) URL without a fragment',
    );
    expect(build({ runbookBaseUrl: 'https://example.com/operations.md#alarms' })).toThrow(
      'is not an http(s) URL without a fragment',
    );
  });

  it('a release path that is not a Parameter Store path', () => {
    expect(build({ releasePath: 'selfdeploy' })).toThrow(
      'releasePath: must be a Parameter Store path such as /selfdeploy',
    );
    expect(build({ releasePath: '/selfdeploy/' })).toThrow('releasePath: must be a Parameter Store path');
  });

  it('document options the builder rejects', () => {
    expect(build({ document: { deployCommand: 'cap\ndeploy' } })).toThrow(
      'SelfDeployDocumentOptions.deployCommand',
    );
  });
});

describe('every problem of a configuration is named at once', () => {
  it('in one SelfDeployPropsError, one line', () => {
    const error = errorOf({
      groups: [
        { autoScalingGroup: 'web', appUser: 'root', heartbeatTimeout: Duration.minutes(20) },
        { autoScalingGroup: 'worker', environment: 'Staging' },
      ],
      reconcileInterval: Duration.seconds(90),
      document: { deployCommand: 'cap\ndeploy' },
    });

    for (const problem of [
      'group web: heartbeatTimeout is 1200 s',
      'group web: appUser is root',
      'group worker: environment: must match',
      'reconcileInterval is 90 s',
      'SelfDeployDocumentOptions.deployCommand',
    ]) {
      expect(error.message).toContain(problem);
    }
    expect(error.message).not.toContain('\n');
    expect(error).toBeInstanceOf(SelfDeployPropsError);
    expect(error.name).toBe('SelfDeployPropsError');
  });

  it('each once', () => {
    const error = errorOf({ groups: [{ autoScalingGroup: 'web', heartbeatTimeout: Duration.hours(3) }] });

    expect(error.message.match(/heartbeatTimeout is/g)).toHaveLength(1);
  });
});

describe('settings that look risky but are allowed', () => {
  it('root as the app user when the document allows it', () => {
    expect(
      build({ groups: [{ autoScalingGroup: 'web', appUser: 'root' }], document: { allowRootAppUser: true } }),
    ).not.toThrow();
  });

  it('a short execution timeout: the default bootstrap budget becomes half of it', () => {
    const stack = testStack();
    const selfDeploy = new SelfDeploy(stack, 'SelfDeploy', {
      groups: [{ autoScalingGroup: 'web' }],
      executionTimeout: Duration.minutes(10),
    });
    const budget = selfDeploy.monitoring.alarms.find((alarm) => alarm.node.id === 'webBootstrapTime');

    expect(stack.resolve((budget?.node.defaultChild as { threshold?: number } | undefined)?.threshold)).toBe(
      300,
    );
  });

  it('a loopback health-check URL', () => {
    expect(
      build({ groups: [{ autoScalingGroup: 'web', healthCheckUrl: 'http://127.0.0.1:3000/up' }] }),
    ).not.toThrow();
  });
});
