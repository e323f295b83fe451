import { Duration } from 'aws-cdk-lib';
import { SelfDeploy, type SelfDeployProps } from '../../infra/self-deploy';
import { testStack } from './helpers';

// Construction throws before anything is synthesized, so each case is cheap.
const build = (props: Partial<SelfDeployProps>) => () =>
  new SelfDeploy(testStack(), 'SelfDeploy', { groups: [{ autoScalingGroup: 'web' }], ...props });

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

  it('settings the SelfDeploy document would reject', () => {
    expect(build({ groups: [{ autoScalingGroup: 'web', environment: 'Production!' }] })).toThrow(
      /selfdeploy settings are invalid: groups\.web\.environment: must match/,
    );
    expect(build({ groups: [{ autoScalingGroup: 'web', appUser: 'Root User' }] })).toThrow(
      /groups\.web\.appUser: must match/,
    );
    expect(build({ documentName: 'x' })).toThrow(/documentName: must be an SSM document name/);
    expect(build({ redeployMaxConcurrency: '0' })).toThrow(/redeployMaxConcurrency/);
  });

  it('document options the builder rejects', () => {
    expect(build({ document: { deployCommand: 'cap\ndeploy' } })).toThrow(
      'SelfDeployDocumentOptions.deployCommand',
    );
  });
});
