import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { aws_autoscaling as autoscaling, aws_ec2 as ec2, Stack } from 'aws-cdk-lib';
import { parseConfig } from '../../functions/orchestrator/config';
import { EXAMPLE_CONFIG_FILE, loadExistingGroupsConfig, toSelfDeployProps } from '../../infra/app-config';
import { DemoStack } from '../../infra/demo-stack';
import { ExistingGroupsStack } from '../../infra/existing-groups-stack';
import { SelfDeploy, SelfDeployPropsError } from '../../infra/self-deploy';
import {
  actionsOf,
  assetHashSerializer,
  deployedConfig,
  logicalId,
  nagFindings,
  onlyResource,
  policyStatements,
  resourcesOf,
  SAMPLE_QUEUE_URL,
  templateOf,
  testApp,
} from './helpers';

expect.addSnapshotSerializer(assetHashSerializer);

const example = loadExistingGroupsConfig(() => undefined);
const existing = new ExistingGroupsStack(testApp(), 'Existing', { config: example.config });
const existingTemplate = templateOf(existing);
const demo = new DemoStack(testApp(), 'Demo');
const demoTemplate = templateOf(demo);
const demoGroupRef = { Ref: logicalId(demo, demo.group) };

describe('existing-groups stack', () => {
  it('matches the snapshot', () => {
    // The document's text is the instance script, asserted equal to the builder's output in
    // self-deploy.test.ts; in the snapshot it would churn with every script change.
    const template = structuredClone(existingTemplate.toJSON()) as {
      Resources: Record<string, { Type: string; Properties: object }>;
    };
    for (const resource of Object.values(template.Resources)) {
      if (resource.Type === 'AWS::SSM::Document')
        resource.Properties = { ...resource.Properties, Content: '[document]' };
    }
    expect(template).toMatchSnapshot();
  });

  it("grants each group's instance role the command output and the pinned revisions", () => {
    const policies = Object.entries(resourcesOf(existingTemplate, 'AWS::IAM::Policy'));
    const statements = policyStatements(existingTemplate, 'InstanceRole');

    expect(
      policies.filter(([id]) => id.startsWith('InstanceRole')).map(([, policy]) => policy.Properties.Roles),
    ).toEqual([['web-instance-role']]);
    expect(statements.flatMap(actionsOf).sort()).toEqual([
      'logs:CreateLogStream',
      'logs:DescribeLogGroups',
      'logs:DescribeLogStreams',
      'logs:PutLogEvents',
      'ssm:GetParameter',
    ]);
    expect(JSON.stringify(statements)).toContain(':parameter/selfdeploy/production/revision"');
  });

  it("grants each role only the parameters and deploy key of its own groups' environments", () => {
    const loaded = loadExistingGroupsConfig((key) =>
      key === 'selfdeploy'
        ? {
            groups: [
              { name: 'web', environment: 'production', instanceRoleName: 'web-role' },
              { name: 'worker', environment: 'production', instanceRoleName: 'shared-role' },
              { name: 'web-staging', environment: 'staging', instanceRoleName: 'shared-role' },
              { name: 'qa', environment: 'qa', instanceRoleName: 'qa-role' },
            ],
            document: { deployKeyParameterName: '/selfdeploy/{environment}/deploy-key' },
            deployKeyEncryptionKeyArn:
              'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
          }
        : undefined,
    );
    const stack = new ExistingGroupsStack(testApp(), 'Roles', { config: loaded.config });
    const template = templateOf(stack);
    const granted = (role: string) => {
      const statements = policyStatements(template, `InstanceRole${role}`);
      return {
        parameters: JSON.stringify(statements.filter((s) => actionsOf(s).includes('ssm:GetParameter'))),
        decryptFor: JSON.stringify(
          statements.filter((s) => actionsOf(s).includes('kms:Decrypt')).map((s) => s.Condition),
        ),
      };
    };

    // The deploy keys sit under the default releasePath: the function's role may not touch them.
    const denied = JSON.stringify(
      policyStatements(template, 'SelfDeployFunctionRole').filter((s) => s.Effect === 'Deny'),
    );
    expect(denied).toContain('"ssm:PutParameter"');
    expect(denied).toContain(':parameter/selfdeploy/*/deploy-key"');

    for (const [role, own, others] of [
      ['webrole', ['production'], ['staging', 'qa']],
      ['sharedrole', ['production', 'staging'], ['qa']],
      ['qarole', ['qa'], ['production', 'staging']],
    ] as const) {
      const { parameters, decryptFor } = granted(role);
      for (const environment of own) {
        expect(parameters).toContain(`:parameter/selfdeploy/${environment}/deploy-key"`);
        expect(decryptFor).toContain(`:parameter/selfdeploy/${environment}/deploy-key"`);
      }
      for (const environment of others) {
        expect(parameters).not.toContain(`/${environment}/`);
        expect(decryptFor).not.toContain(`/${environment}/`);
      }
    }
    expect(nagFindings(stack)).toEqual([]);
  });

  it('lets the function read and write the default release path, and tag only the configured groups', () => {
    const statements = JSON.stringify(policyStatements(existingTemplate, 'SelfDeployFunctionRole'));

    expect(statements).toContain(':parameter/selfdeploy/*"');
    expect(statements).toContain(':parameter/selfdeploy"');
    expect(statements).toContain('"aws:ResourceTag/aws:autoscaling:groupName":["web","worker"]');
  });

  it('passes cdk-nag', () => {
    expect(nagFindings(existing)).toEqual([]);
  });
});

describe('demo stack', () => {
  const SHIPPED_STAGE = path.join(
    __dirname,
    '..',
    '..',
    'scripts',
    'instance',
    'capistrano',
    'local_production.rb',
  );
  const group = onlyResource(demoTemplate, 'AWS::AutoScaling::AutoScalingGroup');

  it("puts the hook in the group's own definition, so its first instances are held too", () => {
    expect(group.LifecycleHookSpecificationList).toEqual([
      {
        LifecycleHookName: 'selfdeploy',
        LifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING',
        DefaultResult: 'ABANDON',
        HeartbeatTimeout: 2520,
      },
    ]);
    expect(resourcesOf(demoTemplate, 'AWS::AutoScaling::LifecycleHook')).toEqual({});
  });

  it('routes launches of its group and gives the function a configuration naming it', () => {
    const launchRule = Object.values(resourcesOf(demoTemplate, 'AWS::Events::Rule')).find(
      (rule) =>
        (rule.Properties.EventPattern as { source?: string[] } | undefined)?.source?.[0] ===
        'aws.autoscaling',
    );
    const fn = onlyResource(demoTemplate, 'AWS::Lambda::Function');
    // What CloudFormation will produce once the group has its name and the queue its URL.
    const queueRef = { Ref: logicalId(demo, demo.selfDeploy.queue) };
    const deployed = deployedConfig(fn, (reference) =>
      JSON.stringify(reference) === JSON.stringify(queueRef) ? SAMPLE_QUEUE_URL : 'demo-group',
    );

    expect(launchRule?.Properties.EventPattern).toMatchObject({
      detail: { AutoScalingGroupName: [demoGroupRef] },
    });
    expect(parseConfig(deployed).groups['demo-group']).toMatchObject({
      appUser: 'deploy',
      deployPath: '/var/www/app/deploy',
      appPath: '/var/www/app',
    });
  });

  const launchTemplate = onlyResource(demoTemplate, 'AWS::EC2::LaunchTemplate').LaunchTemplateData as {
    UserData: { 'Fn::Base64': string };
    [key: string]: unknown;
  };
  const userData = launchTemplate.UserData['Fn::Base64'];

  it('prepares instances with the SSM agent, git, Ruby and Capistrano, the deploy checkout, IMDSv2 and encrypted disks', () => {
    expect(launchTemplate.MetadataOptions).toMatchObject({ HttpTokens: 'required' });
    expect(launchTemplate.BlockDeviceMappings).toEqual([
      { DeviceName: '/dev/xvda', Ebs: { Encrypted: true, VolumeSize: 16, VolumeType: 'gp3' } },
    ]);
    for (const step of ['amazon-ssm-agent', 'git clone', 'bundle install']) {
      expect(userData).toContain(step);
    }
    // EC2's limit on user data.
    expect(Buffer.byteLength(userData)).toBeLessThan(16 * 1024);
  });

  it("installs Amazon Linux 2023's own Ruby packages, then Capistrano", () => {
    const install = /^retry dnf install -y ((?:\\\n|[^\n])*)$/m.exec(userData)?.[1] ?? '';
    const packages = install.split(/[\s\\]+/).filter(Boolean);

    expect(packages).toEqual(
      expect.arrayContaining([
        'git',
        'openssh-server',
        'ruby3.2',
        'ruby3.2-rubygems',
        'ruby3.2-rubygem-bundler',
        'ruby3.2-devel',
        'gcc',
        'make',
      ]),
    );
    expect(packages).not.toContain('ruby');
    expect(userData).toContain("retry gem install --no-document capistrano:'~> 3.17'");
  });

  it('deploys as a dedicated user it creates without sudo rights, not as ec2-user', () => {
    expect(userData).toMatch(/^ {2}useradd --create-home --shell \/bin\/bash "\$APP_USER"$/m);
    expect(userData).toMatch(/^APP_USER='deploy' /m);
    expect(userData).not.toMatch(/sudoers|wheel|usermod -a?G/);
  });

  it("writes selfdeploy's shipped Capistrano stage byte for byte, not a stage of its own", () => {
    const start = userData.indexOf('write_stage() {\n');
    const end = userData.indexOf('\nSELFDEPLOY_STAGE_END\n}\n', start);
    const definition = userData.slice(start, end + '\nSELFDEPLOY_STAGE_END\n}\n'.length);

    expect(start).toBeGreaterThan(-1);

    const written = execFileSync('bash', ['-c', `${definition}write_stage`]);

    expect(written.equals(readFileSync(SHIPPED_STAGE))).toBe(true);
    expect(userData).toContain('write_stage | as_app_user tee "$seed/config/deploy/local_production.rb"');
    expect(userData).not.toMatch(/server 'localhost'/);
  });

  it('user data passes shellcheck as the bash it is', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'selfdeploy-user-data-'));
    try {
      writeFileSync(path.join(dir, 'user-data.sh'), userData);

      const check = spawnSync(
        'shellcheck',
        ['--shell=bash', '--severity=warning', path.join(dir, 'user-data.sh')],
        {
          encoding: 'utf8',
        },
      );

      expect(check.stdout).toBe('');
      expect(check.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a repository URL git cannot clone, with the error every bad setting raises', () => {
    const build = () => new DemoStack(testApp(), 'BadUrlDemo', { repositoryUrl: 'example.com/app.git' });

    expect(build).toThrow(SelfDeployPropsError);
    expect(build).toThrow(
      'repositoryUrl "example.com/app.git" must be an https://, git://, ssh:// or file:// URL',
    );
  });

  it('quotes a repository URL for the shell', () => {
    const stack = new DemoStack(testApp(), 'QuotedDemo', {
      repositoryUrl: "https://example.com/o'brien/app.git",
    });
    const data = (
      onlyResource(templateOf(stack), 'AWS::EC2::LaunchTemplate').LaunchTemplateData as {
        UserData: { 'Fn::Base64': string };
      }
    ).UserData['Fn::Base64'];

    const value = execFileSync(
      'bash',
      ['-c', `${/^REPOSITORY_URL=.*$/m.exec(data)?.[0]}\nprintf %s "$REPOSITORY_URL"`],
      {
        encoding: 'utf8',
      },
    );

    expect(value).toBe("https://example.com/o'brien/app.git");
  });

  it('lets its instances run SSM commands and write their output', () => {
    const role = Object.values(resourcesOf(demoTemplate, 'AWS::IAM::Role')).find((candidate) =>
      JSON.stringify(candidate.Properties.AssumeRolePolicyDocument).includes('ec2.amazonaws.com'),
    );
    const statements = policyStatements(demoTemplate, 'InstanceRole');

    expect(JSON.stringify(role?.Properties.ManagedPolicyArns)).toContain('AmazonSSMManagedInstanceCore');
    expect(statements.flatMap(actionsOf)).toEqual(
      expect.arrayContaining(['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogGroups']),
    );
  });

  it('passes cdk-nag', () => {
    expect(nagFindings(demo)).toEqual([]);
  });
});

describe('a group built in another stack', () => {
  it('gets a hook resource of its own', () => {
    const app = testApp();
    const groupStack = new Stack(app, 'Groups');
    const group = new autoscaling.AutoScalingGroup(groupStack, 'Web', {
      vpc: new ec2.Vpc(groupStack, 'Vpc', { natGateways: 0 }),
      instanceType: new ec2.InstanceType('t4g.small'),
      machineImage: ec2.MachineImage.latestAmazonLinux2023({ cpuType: ec2.AmazonLinuxCpuType.ARM_64 }),
    });
    const stack = new Stack(app, 'Deploy');
    new SelfDeploy(stack, 'SelfDeploy', { groups: [{ autoScalingGroup: group }] });

    expect(onlyResource(templateOf(stack), 'AWS::AutoScaling::LifecycleHook')).toMatchObject({
      DefaultResult: 'ABANDON',
      AutoScalingGroupName: { 'Fn::ImportValue': expect.stringContaining('Groups') },
    });
  });
});

describe('existing-groups configuration', () => {
  it('comes from the example file when nothing is configured', () => {
    expect(example).toMatchObject({ source: EXAMPLE_CONFIG_FILE, isExample: true });
    expect(example.config.groups.map((group) => group.name)).toEqual(['web', 'worker']);
  });

  it('comes from the selfdeploy context value, as an object or as JSON text', () => {
    const config = { groups: [{ name: 'api', environment: 'staging', heartbeatTimeoutSeconds: 3000 }] };
    const fromObject = loadExistingGroupsConfig((key) => (key === 'selfdeploy' ? config : undefined));
    const fromText = loadExistingGroupsConfig((key) =>
      key === 'selfdeploy' ? JSON.stringify(config) : undefined,
    );

    expect(fromObject).toEqual({ source: 'context selfdeploy', isExample: false, config });
    expect(fromText.config).toEqual(config);
  });

  it('comes from the file named by selfdeployConfigFile', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'selfdeploy-config-'));
    const file = path.join(dir, 'groups.json');
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'api' }], reconcileIntervalMinutes: 2 }));

    const loaded = loadExistingGroupsConfig((key) => (key === 'selfdeployConfigFile' ? file : undefined));
    rmSync(dir, { recursive: true, force: true });

    expect(loaded).toMatchObject({ source: file, isExample: false, config: { reconcileIntervalMinutes: 2 } });
  });

  it('names every problem of an invalid configuration', () => {
    const load = (value: unknown) => () =>
      loadExistingGroupsConfig((key) => (key === 'selfdeploy' ? value : undefined));

    expect(load('{')).toThrow(SelfDeployPropsError);
    expect(load('{')).toThrow('context selfdeploy is not valid JSON');
    expect(load({ groups: [], logRetentionDays: 31, extra: 1 })).toThrow(
      /not a valid selfdeploy configuration: .*groups.*logRetentionDays: must be a retention CloudWatch Logs offers/,
    );
    expect(() =>
      loadExistingGroupsConfig((key) =>
        key === 'selfdeployConfigFile' ? '/nonexistent/selfdeploy.json' : undefined,
      ),
    ).toThrow('selfdeployConfigFile: /nonexistent/selfdeploy.json does not exist');
  });

  it('names problems of form and of meaning in one error', () => {
    const load = () =>
      loadExistingGroupsConfig((key) =>
        key === 'selfdeploy'
          ? {
              groups: [
                { name: 'web', appUser: 'root', environment: 'Prod!', heartbeatTimeoutSeconds: 'long' },
                { name: 'worker', healthCheckUrl: 'http://example.com/up' },
              ],
              logRetentionDays: 31,
              reconcileIntervalMinutes: 500,
            }
          : undefined,
      );

    expect(load).toThrow(SelfDeployPropsError);
    expect(load).toThrow(
      new RegExp(
        [
          '^context selfdeploy is not a valid selfdeploy configuration: ',
          'groups\\.0\\.heartbeatTimeoutSeconds: .*',
          'logRetentionDays: must be a retention CloudWatch Logs offers.*',
          'group web: appUser is root.*',
          'reconcileInterval \\(30000 s\\) is not shorter than the shortest heartbeatTimeout.*',
          'group web: environment: must match.*',
          'group worker: healthCheckUrl: must match',
        ].join(''),
      ),
    );
  });

  it('refuses the old instanceRoleNames, which gave every role every environment', () => {
    expect(() =>
      loadExistingGroupsConfig((key) =>
        key === 'selfdeploy' ? { groups: [{ name: 'web' }], instanceRoleNames: ['web-role'] } : undefined,
      ),
    ).toThrow('instanceRoleNames: is replaced by groups[].instanceRoleName');
  });

  it('becomes construct props with durations', () => {
    const props = toSelfDeployProps({
      groups: [{ name: 'api', heartbeatTimeoutSeconds: 3000, bootstrapBudgetSeconds: 600, follow: 'branch' }],
      executionTimeoutSeconds: 900,
      reconcileIntervalMinutes: 2,
      logRetentionDays: 7,
      releasePath: '/acme/releases',
      failureStreak: 5,
      runbookBaseUrl: 'https://example.com/operations.md',
    });

    expect(props.groups[0]?.autoScalingGroup).toBe('api');
    expect(props.groups[0]?.heartbeatTimeout?.toSeconds()).toBe(3000);
    expect(props.groups[0]?.bootstrapBudget?.toSeconds()).toBe(600);
    expect(props.groups[0]?.follow).toBe('branch');
    expect(props.executionTimeout?.toSeconds()).toBe(900);
    expect(props.reconcileInterval?.toMinutes()).toBe(2);
    expect(props.logRetention).toBe(7);
    expect(props).toMatchObject({
      releasePath: '/acme/releases',
      failureStreak: 5,
      runbookBaseUrl: 'https://example.com/operations.md',
    });
  });

  it('names a follow mode it does not know, and a budget a stack would refuse, in one error', () => {
    const load = () =>
      loadExistingGroupsConfig((key) =>
        key === 'selfdeploy'
          ? {
              groups: [
                { name: 'web', follow: 'head', bootstrapBudgetSeconds: 1800 },
                { name: 'api', bootstrapBudgetSeconds: 1800 },
              ],
            }
          : undefined,
      );

    expect(load).toThrow(/groups\.0\.follow: .*group api: bootstrapBudget is 1800 s/);
  });
});
