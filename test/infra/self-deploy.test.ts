import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Duration, aws_iam as iam, aws_kms as kms } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { parseConfig } from '../../functions/orchestrator/config';
import {
  commandStatusPattern,
  type EventPattern,
  INVOCATION_STATUS_DETAIL_TYPE,
  launchLifecyclePattern,
  TERMINAL_COMMAND_STATUSES,
} from '../../functions/shared/event-patterns';
import {
  GROUP_DIMENSION,
  METRIC_NAMESPACE,
  MetricName,
  SERVICE_NAME,
} from '../../functions/shared/metric-names';
import { buildSelfDeployDocument } from '../../infra/document';
import { COMPLETION_GRACE_SECONDS, SelfDeploy } from '../../infra/self-deploy';
import { matchesPattern } from '../../scripts/local/control-plane/event-pattern';
import {
  actionsOf,
  deployedConfig,
  fixtureEvent,
  logicalId,
  nagFindings,
  onlyResource,
  policyStatements,
  resourcesOf,
  resourcesOfStatement,
  SAMPLE_QUEUE_URL,
  type Statement,
  templateOf,
  testStack,
} from './helpers';

// One stack, synthesized once, for every test in this file.
const DOCUMENT_NAME = 'SelfDeploy-test';
const RUNBOOK = 'https://github.com/acme/app/blob/main/docs/operations.md';
const documentOptions = { pinnedRevisionParameterName: '/selfdeploy/{environment}/revision' };
const stack = testStack();
const selfDeploy = new SelfDeploy(stack, 'SelfDeploy', {
  groups: [
    {
      autoScalingGroup: 'web',
      environment: 'production',
      appUser: 'deploy',
      healthCheckUrl: 'http://localhost:3000/up',
      deployWith: 'standby',
    },
    {
      autoScalingGroup: 'worker',
      environment: 'staging',
      lifecycleHookName: 'worker-deploy',
      heartbeatTimeout: Duration.hours(1),
      warmPool: 'deploy-on-service',
      follow: 'branch',
      bootstrapBudget: Duration.minutes(20),
    },
  ],
  documentName: DOCUMENT_NAME,
  document: documentOptions,
  alarmEmail: 'ops@example.com',
  releasePath: '/acme/releases',
  failureStreak: 4,
  runbookBaseUrl: RUNBOOK,
});
const template = templateOf(stack);
const functionLogicalId = logicalId(stack, selfDeploy.function);
const queueLogicalId = logicalId(stack, selfDeploy.deadLetterQueue);
const functionArn = { 'Fn::GetAtt': [functionLogicalId, 'Arn'] };
const eventQueueArn = { 'Fn::GetAtt': [logicalId(stack, selfDeploy.queue), 'Arn'] };
const statusQueueArn = { 'Fn::GetAtt': [logicalId(stack, selfDeploy.statusQueue), 'Arn'] };

const rules = Object.values(resourcesOf(template, 'AWS::Events::Rule')).map((rule) => rule.Properties);
const ruleWithSource = (source: string) => {
  const rule = rules.find((candidate) =>
    ((candidate.EventPattern as { source?: string[] } | undefined)?.source ?? []).includes(source),
  );
  if (!rule) throw new Error(`no rule for ${source}`);
  return rule.EventPattern as EventPattern;
};
/** The targets (their ARNs) of the rule for events of `source`. */
const ruleTargets = (source: string) =>
  (
    rules.find((candidate) =>
      ((candidate.EventPattern as { source?: string[] } | undefined)?.source ?? []).includes(source),
    )?.Targets as { Arn: unknown }[] | undefined
  )?.map((target) => target.Arn);
const withDetail = (event: Record<string, unknown>, detail: Record<string, unknown>) => ({
  ...event,
  detail: { ...(event.detail as Record<string, unknown>), ...detail },
});

describe('lifecycle hooks', () => {
  const hooks = Object.values(resourcesOf(template, 'AWS::AutoScaling::LifecycleHook')).map(
    (hook) => hook.Properties,
  );

  it('holds launching instances of every managed group, abandoning them when nobody answers', () => {
    expect(hooks).toEqual([
      {
        AutoScalingGroupName: 'web',
        LifecycleHookName: 'selfdeploy',
        LifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING',
        DefaultResult: 'ABANDON',
        HeartbeatTimeout: 600 + 1800 + COMPLETION_GRACE_SECONDS,
      },
      {
        AutoScalingGroupName: 'worker',
        LifecycleHookName: 'worker-deploy',
        LifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING',
        DefaultResult: 'ABANDON',
        HeartbeatTimeout: 3600,
      },
    ]);
  });

  it("heartbeats a hook on the hook's own cadence when a hand-written configuration leaves the timeout out", () => {
    const own = testStack();
    const installation = new SelfDeploy(own, 'SelfDeploy', {
      groups: [{ autoScalingGroup: 'web' }],
      executionTimeout: Duration.minutes(20),
      agentWait: Duration.minutes(5),
    });
    const hook = onlyResource(templateOf(own), 'AWS::AutoScaling::LifecycleHook');
    // The construct's configuration with the timeout removed, as someone writing it by hand would.
    const { heartbeatTimeoutSeconds: _given, ...handWritten } = installation.config.groups.web ?? {};

    const config = parseConfig(
      JSON.stringify({
        ...installation.config,
        waitQueueUrl: SAMPLE_QUEUE_URL,
        groups: { web: handWritten },
      }),
    );

    expect(config.groups.web?.heartbeatTimeoutSeconds).toBe(hook.HeartbeatTimeout);
  });
});

describe('rules', () => {
  it('route launches of exactly the managed groups', () => {
    const pattern = ruleWithSource('aws.autoscaling');
    const launch = fixtureEvent('launch');

    expect(pattern).toEqual(launchLifecyclePattern(['web', 'worker']));
    expect(matchesPattern(pattern, launch)).toBe(true);
    expect(matchesPattern(pattern, withDetail(launch, { AutoScalingGroupName: 'worker' }))).toBe(true);
    expect(matchesPattern(pattern, fixtureEvent('terminate'))).toBe(false);
    expect(matchesPattern(pattern, withDetail(launch, { AutoScalingGroupName: 'someone-elses-group' }))).toBe(
      false,
    );
  });

  it("route only this document's terminal command statuses", () => {
    const pattern = ruleWithSource('aws.ssm');
    const ours = withDetail(fixtureEvent('command-success'), { 'document-name': DOCUMENT_NAME });

    expect(pattern).toEqual(commandStatusPattern(DOCUMENT_NAME));
    for (const status of TERMINAL_COMMAND_STATUSES) {
      expect(matchesPattern(pattern, withDetail(ours, { status }))).toBe(true);
    }
    for (const status of ['Pending', 'InProgress', 'Delayed', 'Cancelling']) {
      expect(matchesPattern(pattern, withDetail(ours, { status }))).toBe(false);
    }
    expect(matchesPattern(pattern, withDetail(ours, { 'document-name': 'AWS-RunShellScript' }))).toBe(false);
    expect(matchesPattern(pattern, { ...ours, 'detail-type': INVOCATION_STATUS_DETAIL_TYPE })).toBe(false);
  });

  it('run the reconciler every five minutes by default', () => {
    expect(rules.filter((rule) => rule.ScheduleExpression === 'rate(5 minutes)')).toHaveLength(1);
  });

  it('put launch events on the event queue, status events on the status queue, and invoke the function on schedule, with the dead-letter queue for undeliverable events', () => {
    const targetOf = (rule: Record<string, unknown>) =>
      (rule.EventPattern as { source?: string[] } | undefined)?.source?.[0] ?? 'schedule';
    expect(rules).toHaveLength(3);
    expect(
      Object.fromEntries(rules.map((rule) => [targetOf(rule), (rule.Targets as { Arn: unknown }[])[0]?.Arn])),
    ).toEqual({ 'aws.autoscaling': eventQueueArn, 'aws.ssm': statusQueueArn, schedule: functionArn });
    for (const rule of rules) {
      expect(rule.Targets).toEqual([
        expect.objectContaining({
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [queueLogicalId, 'Arn'] } },
          RetryPolicy: { MaximumEventAgeInSeconds: 3600 },
        }),
      ]);
    }
  });

  // Completions must not wait behind a burst's launches, whose batches wait on SendCommand's rate.
  it('send command statuses to a queue of their own, apart from launches', () => {
    expect(statusQueueArn).not.toEqual(eventQueueArn);
    expect(ruleTargets('aws.ssm')).toEqual([statusQueueArn]);
    expect(ruleTargets('aws.autoscaling')).toEqual([eventQueueArn]);
  });

  it.each([
    ['event queue', 'EventQueue', 'LaunchRule'],
    ['status queue', 'StatusQueue', 'CommandStatusRule'],
  ])('let only EventBridge, for exactly its rule, send to the %s', (_, queueId, ruleId) => {
    const queue = queueId === 'EventQueue' ? selfDeploy.queue : selfDeploy.statusQueue;
    const queueRef = { Ref: logicalId(stack, queue) };
    const policy = Object.values(resourcesOf(template, 'AWS::SQS::QueuePolicy')).find(
      (resource) => JSON.stringify(resource.Properties.Queues) === JSON.stringify([queueRef]),
    );
    if (!policy) throw new Error(`the ${queueId} has no queue policy`);
    const statements = (policy.Properties.PolicyDocument as { Statement: Statement[] }).Statement;
    const fromEvents = statements.filter((statement) =>
      JSON.stringify(statement.Principal).includes('events.amazonaws.com'),
    );
    expect(fromEvents.map((statement) => [statement.Condition, statement.Resource])).toEqual([
      [
        {
          ArnEquals: {
            'aws:SourceArn': { 'Fn::GetAtt': [expect.stringMatching(`^SelfDeploy${ruleId}`), 'Arn'] },
          },
        },
        { 'Fn::GetAtt': [logicalId(stack, queue), 'Arn'] },
      ],
    ]);
  });

  it('consume each queue through its own mapping, in batches, reporting failed items on their own, at most maxConcurrency at once', () => {
    const mappings = Object.values(resourcesOf(template, 'AWS::Lambda::EventSourceMapping')).map(
      (mapping) => mapping.Properties,
    );
    expect(mappings.map((mapping) => mapping.EventSourceArn)).toEqual([eventQueueArn, statusQueueArn]);
    for (const mapping of mappings) {
      expect(mapping).toMatchObject({
        FunctionName: { Ref: functionLogicalId },
        BatchSize: 100,
        FunctionResponseTypes: ['ReportBatchItemFailures'],
        ScalingConfig: { MaximumConcurrency: 2 },
      });
    }
    // Status events wait longer for company: a batch reads its groups' activities once.
    expect(mappings.map((mapping) => mapping.MaximumBatchingWindowInSeconds)).toEqual([1, 5]);
  });
});

describe('orchestrator permissions', () => {
  const statements = policyStatements(template, 'SelfDeployFunctionRole');
  const withAction = (action: string) =>
    statements.filter((statement) => actionsOf(statement).includes(action));
  const READ_ONLY = /^(ssm|autoscaling|ec2):(List|Describe|Get)[A-Za-z]+$/;
  const AWS_SERVICE = /^(ssm|autoscaling|ec2):/;
  /** A statement's actions, sorted, and its resources as JSON. */
  const grantOf = (statement: Statement) => ({
    actions: actionsOf(statement).sort(),
    resources: resourcesOfStatement(statement).map((resource) => JSON.stringify(resource)),
  });

  it('sends only the SelfDeploy document', () => {
    const [documentStatement, instanceStatement, ...others] = withAction('ssm:SendCommand');

    expect(others).toEqual([]);
    expect(JSON.stringify(documentStatement?.Resource)).toContain(`:document/${DOCUMENT_NAME}"`);
    expect(documentStatement?.Condition).toBeUndefined();
    expect(JSON.stringify(instanceStatement?.Resource)).toMatch(/:instance\/\*"\]\]\}$/);
    expect(instanceStatement?.Condition).toEqual({
      StringEquals: { 'ssm:resourceTag/aws:autoscaling:groupName': ['web', 'worker'] },
    });
  });

  it('completes and heartbeats lifecycle actions of the managed groups only', () => {
    const lifecycle = withAction('autoscaling:CompleteLifecycleAction');

    expect(lifecycle).toHaveLength(1);
    const { actions, resources } = grantOf(lifecycle[0] as Statement);
    expect(actions).toEqual([
      'autoscaling:CompleteLifecycleAction',
      'autoscaling:RecordLifecycleActionHeartbeat',
    ]);
    expect(resources).toHaveLength(2);
    expect(resources[0]).toMatch(/:autoScalingGroup:\*:autoScalingGroupName\/web"\]\]\}$/);
    expect(resources[1]).toMatch(/:autoScalingGroup:\*:autoScalingGroupName\/worker"\]\]\}$/);
  });

  it('moves to Standby and back the instances of the groups that deploy through Standby only', () => {
    const standby = withAction('autoscaling:EnterStandby');

    expect(standby).toHaveLength(1);
    const { actions, resources } = grantOf(standby[0] as Statement);
    expect(actions).toEqual(['autoscaling:EnterStandby', 'autoscaling:ExitStandby']);
    expect(resources).toHaveLength(1);
    expect(resources[0]).toMatch(/:autoScalingGroup:\*:autoScalingGroupName\/web"\]\]\}$/);
  });

  it('grants "*" only for read-only calls', () => {
    const wildcard = statements.filter((statement) => resourcesOfStatement(statement).includes('*'));

    expect(wildcard.flatMap(actionsOf).filter((action) => !READ_ONLY.test(action))).toEqual([]);
    expect(withAction('ssm:SendCommand').flatMap(resourcesOfStatement)).not.toContain('*');
    expect(withAction('autoscaling:CompleteLifecycleAction').flatMap(resourcesOfStatement)).not.toContain(
      '*',
    );
    expect(withAction('autoscaling:EnterStandby').flatMap(resourcesOfStatement)).not.toContain('*');
    expect(statements.flatMap(actionsOf).filter((action) => action.includes('*'))).toEqual([]);
  });

  it('writes its own log group, consumes both queues, sends only to the event queue and the dead-letter queue, nothing else', () => {
    const rest = statements.filter(
      (statement) => !actionsOf(statement).some((action) => AWS_SERVICE.test(action)),
    );
    // The event source mappings read with the function's role, one statement per queue.
    const consume = (queueArn: unknown) => [
      [
        'sqs:ChangeMessageVisibility',
        'sqs:DeleteMessage',
        'sqs:GetQueueAttributes',
        'sqs:GetQueueUrl',
        'sqs:ReceiveMessage',
      ],
      queueArn,
    ];

    expect(rest.map((statement) => [actionsOf(statement).sort(), statement.Resource])).toEqual([
      [
        ['logs:CreateLogStream', 'logs:PutLogEvents'],
        { 'Fn::GetAtt': [expect.stringMatching(/FunctionLogs/), 'Arn'] },
      ],
      // Agent waits go back on the event queue (SendMessageBatch is authorised as sqs:SendMessage);
      // nothing is ever sent to the status queue but by its rule.
      [['sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:SendMessage'], eventQueueArn],
      [['sqs:SendMessage'], { 'Fn::GetAtt': [queueLogicalId, 'Arn'] }],
      consume(eventQueueArn),
      consume(statusQueueArn),
    ]);
  });

  it('reads when a wait began and what its hook carries (DescribeScalingActivities, DescribeLifecycleHooks)', () => {
    const wildcard = statements.filter((statement) => resourcesOfStatement(statement).includes('*'));

    expect(wildcard.flatMap(actionsOf)).toEqual(
      expect.arrayContaining(['autoscaling:DescribeScalingActivities', 'autoscaling:DescribeLifecycleHooks']),
    );
  });

  it('reads and writes parameters under releasePath only, and reads that path itself', () => {
    const parameterStatements = statements.filter(
      (statement) =>
        statement.Effect === 'Allow' &&
        actionsOf(statement).some((action) => action.startsWith('ssm:') && action.includes('Parameter')),
    );
    const parameters = (resource: string) => ({
      'Fn::Join': [
        '',
        [
          'arn:',
          { Ref: 'AWS::Partition' },
          ':ssm:',
          { Ref: 'AWS::Region' },
          ':',
          { Ref: 'AWS::AccountId' },
          `:parameter/${resource}`,
        ],
      ],
    });

    expect(parameterStatements.map((statement) => [actionsOf(statement).sort(), statement.Resource])).toEqual(
      [
        [
          ['ssm:DeleteParameters', 'ssm:GetParameter', 'ssm:GetParametersByPath', 'ssm:PutParameter'],
          parameters('acme/releases/*'),
        ],
        [['ssm:GetParametersByPath'], parameters('acme/releases')],
      ],
    );
    expect(parameterStatements.every((statement) => statement.Condition === undefined)).toBe(true);
  });

  it("never reads or changes the instances' own parameters, which may share releasePath's prefix", () => {
    const denied = statements.filter((statement) => statement.Effect === 'Deny');

    expect(denied).toHaveLength(1);
    expect(actionsOf(denied[0] as Statement).sort()).toEqual([
      'ssm:DeleteParameters',
      'ssm:GetParameter',
      'ssm:GetParametersByPath',
      'ssm:PutParameter',
    ]);
    // The pinned-revision parameter of every environment.
    expect(JSON.stringify(denied[0]?.Resource)).toMatch(/:parameter\/selfdeploy\/\*\/revision"\]\]\}$/);
  });

  it("tags only instances of the managed groups, and only with selfdeploy's own tag keys", () => {
    const [tagging, ...others] = withAction('ec2:CreateTags');

    expect(others).toEqual([]);
    expect(actionsOf(tagging as Statement)).toEqual(['ec2:CreateTags']);
    expect(JSON.stringify(tagging?.Resource)).toMatch(/:ec2:.*:instance\/\*"\]\]\}$/);
    expect(tagging?.Condition).toEqual({
      StringEquals: { 'aws:ResourceTag/aws:autoscaling:groupName': ['web', 'worker'] },
      'ForAllValues:StringEquals': { 'aws:TagKeys': ['selfdeploy:revision', 'selfdeploy:last-deploy'] },
      Null: { 'aws:TagKeys': 'false' },
    });
  });

  it('reads tags with "*", which DescribeTags requires', () => {
    const wildcard = statements.filter((statement) => resourcesOfStatement(statement).includes('*'));

    expect(
      wildcard
        .flatMap(actionsOf)
        .filter((action) => action.startsWith('ec2:'))
        .sort(),
    ).toEqual(['ec2:DescribeTags']);
  });

  it('allows exactly the AWS calls the orchestrator makes', () => {
    const granted = statements
      .flatMap(actionsOf)
      .filter((action) => AWS_SERVICE.test(action))
      .sort();

    expect([...new Set(granted)]).toEqual(sdkCallsOfFunctions().filter((call) => AWS_SERVICE.test(call)));
    // SQS authorises SendMessageBatch as sqs:SendMessage, granted on the event queue above:
    // the waits' re-queueing and the standby nudges.
    expect(sdkCallsOfFunctions().filter((call) => call.startsWith('sqs:'))).toEqual([
      'sqs:SendMessage',
      'sqs:SendMessageBatch',
    ]);
  });
});

describe('instance permissions', () => {
  const instanceStack = testStack('Instances');
  const deployKey = new kms.Key(instanceStack, 'DeployKey', { enableKeyRotation: true });
  const installation = new SelfDeploy(instanceStack, 'SelfDeploy', {
    groups: [
      { autoScalingGroup: 'web', environment: 'production' },
      { autoScalingGroup: 'web-staging', environment: 'staging' },
    ],
    document: {
      pinnedRevisionParameterName: '/selfdeploy/{environment}/revision',
      deployKeyParameterName: '/selfdeploy/{environment}/deploy-key',
    },
    deployKeyEncryptionKey: deployKey,
  });
  const role = (id: string) =>
    new iam.Role(instanceStack, id, { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
  installation.grantInstance(role('ProductionRole'), { environments: ['production'] });
  installation.grantInstance(role('StagingRole'), { environments: ['staging'] });
  const instanceTemplate = templateOf(instanceStack);
  const keyArn = { 'Fn::GetAtt': [logicalId(instanceStack, deployKey), 'Arn'] };
  const parameterOf = (environment: string, name: string) =>
    expect.stringContaining(`:parameter/selfdeploy/${environment}/${name}`);
  const joined = (resource: unknown) => JSON.stringify(instanceStack.resolve(resource));

  it.each([
    ['Production', 'production', 'staging'],
    ['Staging', 'staging', 'production'],
  ])('give the %s role the parameters of its own environment only', (roleName, own, other) => {
    const statements = policyStatements(instanceTemplate, `${roleName}Role`);
    const parameters = statements.filter((statement) => actionsOf(statement).includes('ssm:GetParameter'));

    expect(parameters).toHaveLength(1);
    expect(resourcesOfStatement(parameters[0] as Statement).map(joined)).toEqual([
      parameterOf(own, 'revision'),
      parameterOf(own, 'deploy-key'),
    ]);
    expect(JSON.stringify(statements)).not.toContain(`/${other}/`);
  });

  it('let a role decrypt the deploy key only through SSM, only for its own environment', () => {
    const statements = policyStatements(instanceTemplate, 'StagingRole');
    const decrypt = statements.filter((statement) => actionsOf(statement).includes('kms:Decrypt'));

    expect(decrypt).toEqual([
      expect.objectContaining({
        Effect: 'Allow',
        Action: 'kms:Decrypt',
        Resource: keyArn,
        Condition: {
          StringEquals: {
            'kms:ViaService': expect.anything(),
            'kms:EncryptionContext:PARAMETER_ARN': [expect.anything()],
          },
        },
      }),
    ]);
    const condition = (decrypt[0] as Statement).Condition?.StringEquals ?? {};
    expect(joined(condition['kms:ViaService'])).toMatch(
      /"ssm\.",\{"Ref":"AWS::Region"\},"\.",\{"Ref":"AWS::URLSuffix"\}/,
    );
    expect(joined(condition['kms:EncryptionContext:PARAMETER_ARN'])).toContain(
      ':parameter/selfdeploy/staging/deploy-key',
    );
    expect(joined(condition['kms:EncryptionContext:PARAMETER_ARN'])).not.toContain('production');
  });

  it('need the environments named when the groups deploy more than one, and only managed ones', () => {
    expect(() => installation.grantInstance(role('UnnamedRole'))).toThrow(
      'grantInstance: the groups deploy production, staging; name the environments',
    );
    expect(() => installation.grantInstance(role('OtherRole'), { environments: ['qa'] })).toThrow(
      'grantInstance: environments ["qa"] must be one or more of the environments the groups deploy',
    );
  });

  it('default to the one environment of the groups', () => {
    const single = testStack('Single');
    const singleRole = new iam.Role(single, 'Role', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
    });
    new SelfDeploy(single, 'SelfDeploy', {
      groups: [{ autoScalingGroup: 'web', environment: 'staging' }],
      document: { pinnedRevisionParameterName: '/selfdeploy/{environment}/revision' },
    }).grantInstance(singleRole);

    expect(JSON.stringify(policyStatements(templateOf(single), 'Role'))).toContain(
      ':parameter/selfdeploy/staging/revision"',
    );
  });

  it('pass cdk-nag', () => {
    expect(nagFindings(instanceStack)).toEqual([]);
  });
});

describe('function', () => {
  const fn = onlyResource(template, 'AWS::Lambda::Function');

  it('runs the bundled handler on arm64 Node.js 22', () => {
    expect(fn).toMatchObject({
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      Timeout: 300,
      MemorySize: 256,
      DeadLetterConfig: { TargetArn: { 'Fn::GetAtt': [queueLogicalId, 'Arn'] } },
    });
  });

  it('gets a configuration the orchestrator accepts, with every setting given', () => {
    const queueRef = { Ref: logicalId(stack, selfDeploy.queue) };
    const config = parseConfig(
      deployedConfig(fn, (reference) => {
        expect(reference).toEqual(queueRef);
        return SAMPLE_QUEUE_URL;
      }),
    );

    expect(config).toMatchObject({
      documentName: DOCUMENT_NAME,
      waitQueueUrl: SAMPLE_QUEUE_URL,
      executionTimeoutSeconds: 1800,
      agentWaitSeconds: 600,
      outputLogGroupName: `/selfdeploy/${DOCUMENT_NAME}`,
      releasePath: '/acme/releases',
      groups: {
        web: {
          lifecycleHookName: 'selfdeploy',
          environment: 'production',
          appUser: 'deploy',
          healthCheckUrl: 'http://localhost:3000/up',
          onFailure: 'ABANDON',
          follow: 'release',
        },
        worker: {
          lifecycleHookName: 'worker-deploy',
          environment: 'staging',
          warmPool: 'deploy-on-service',
          heartbeatTimeoutSeconds: 3600,
          follow: 'branch',
        },
      },
    });
    // The budget is the alarms' alone.
    expect(JSON.stringify(config)).not.toContain('bootstrapBudget');
  });

  it('retries a failed event twice, then gives it to the dead-letter queue', () => {
    expect(onlyResource(template, 'AWS::Lambda::EventInvokeConfig')).toMatchObject({
      MaximumRetryAttempts: 2,
      MaximumEventAgeInSeconds: 3600,
    });
  });

  it('logs to a log group with retention', () => {
    template.hasResourceProperties('AWS::Logs::LogGroup', {
      LogGroupName: Match.absent(),
      RetentionInDays: 30,
    });
    expect(fn.LoggingConfig).toEqual({ LogGroup: { Ref: expect.stringMatching(/FunctionLogs/) } });
  });
});

describe('document and command output', () => {
  it('is the document the builder makes', () => {
    expect(onlyResource(template, 'AWS::SSM::Document')).toEqual({
      Name: DOCUMENT_NAME,
      DocumentType: 'Command',
      DocumentFormat: 'JSON',
      TargetType: '/AWS::EC2::Instance',
      UpdateMethod: 'NewVersion',
      Content: buildSelfDeployDocument(documentOptions),
    });
  });

  it("updates the document before the function in a stack update, so new code never sends to the old document's default version", () => {
    const documentId = stack.getLogicalId(selfDeploy.document);
    const fn = resourcesOf(template, 'AWS::Lambda::Function')[functionLogicalId] as { DependsOn?: string[] };

    expect(fn.DependsOn).toContain(documentId);
  });

  it('keeps every command output in a log group with retention', () => {
    template.hasResourceProperties('AWS::Logs::LogGroup', {
      LogGroupName: `/selfdeploy/${DOCUMENT_NAME}`,
      RetentionInDays: 30,
    });
  });
});

describe('dead-letter queue', () => {
  it('is encrypted, keeps messages 14 days and refuses plain HTTP', () => {
    template.hasResourceProperties('AWS::SQS::Queue', {
      SqsManagedSseEnabled: true,
      MessageRetentionPeriod: 14 * 24 * 3600,
    });
    template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });
});

describe('alarms', () => {
  const alarms = Object.values(resourcesOf(template, 'AWS::CloudWatch::Alarm')).map(
    (alarm) => alarm.Properties,
  );
  const topicRef = { Ref: logicalId(stack, selfDeploy.alarmTopic) };
  const groupAlarm = (metricName: string, group: string) =>
    alarms.find(
      (alarm) =>
        alarm.MetricName === metricName && JSON.stringify(alarm.Dimensions).includes(`"Value":"${group}"`),
    );

  it.each(['web', 'worker'])('fire on the first failed bootstrap of %s', (group) => {
    expect(groupAlarm(MetricName.BootstrapFailed, group)).toMatchObject({
      Namespace: METRIC_NAMESPACE,
      Dimensions: expect.arrayContaining([
        { Name: 'service', Value: SERVICE_NAME },
        { Name: GROUP_DIMENSION, Value: group },
      ]),
      Statistic: 'Sum',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      AlarmActions: [topicRef],
    });
  });

  it.each(['web', 'worker'])(
    'fire when instances of %s stay stuck longer than a launch waits for its agent, or the reconciler stops publishing',
    (group) => {
      expect(groupAlarm(MetricName.StuckInstances, group)).toMatchObject({
        Namespace: METRIC_NAMESPACE,
        Statistic: 'Maximum',
        Threshold: 1,
        Period: 600,
        // The default 10-minute agent wait fits in one 10-minute period; one more must breach too.
        EvaluationPeriods: 2,
        TreatMissingData: 'breaching',
        AlarmActions: [topicRef],
      });
    },
  );

  it('say that a stuck instance may be one whose SendCommand was refused although its agent is online', () => {
    expect(groupAlarm(MetricName.StuckInstances, 'web')?.AlarmDescription).toContain(
      'SendCommand refused although the agent is online',
    );
  });

  it('fire on function errors, on a message of either event queue as old as a visibility timeout, and on dead letters', () => {
    expect(alarms.find((alarm) => alarm.MetricName === 'Errors')).toMatchObject({
      Namespace: 'AWS/Lambda',
      Dimensions: [{ Name: 'FunctionName', Value: { Ref: functionLogicalId } }],
      Threshold: 1,
      AlarmActions: [topicRef],
    });
    expect(alarms.find((alarm) => alarm.MetricName === 'ApproximateNumberOfMessagesVisible')).toMatchObject({
      Namespace: 'AWS/SQS',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queueLogicalId, 'QueueName'] } }],
      Threshold: 1,
      AlarmActions: [topicRef],
    });
    // A message the function failed on comes back after the visibility timeout: 6 function timeouts.
    // Either queue can hold it, so the alarm reads the older of the two.
    const oldest = (queue: IConstruct) => ({
      MetricStat: {
        Metric: {
          Namespace: 'AWS/SQS',
          MetricName: 'ApproximateAgeOfOldestMessage',
          Dimensions: [
            { Name: 'QueueName', Value: { 'Fn::GetAtt': [logicalId(stack, queue), 'QueueName'] } },
          ],
        },
        Period: 300,
        Stat: 'Maximum',
      },
      ReturnData: false,
    });
    expect(
      alarms.find((alarm) => JSON.stringify(alarm.Metrics ?? []).includes('ApproximateAgeOfOldestMessage')),
    ).toMatchObject({
      Metrics: [
        { Expression: 'MAX([q0, q1])', ReturnData: true },
        { Id: 'q0', ...oldest(selfDeploy.queue) },
        { Id: 'q1', ...oldest(selfDeploy.statusQueue) },
      ],
      Threshold: 1800,
      AlarmActions: [topicRef],
    });
    // Five per group, three for the orchestrator.
    expect(alarms).toHaveLength(13);
  });

  const mathAlarm = (group: string) =>
    alarms.find((alarm) =>
      (alarm.Metrics as { MetricStat?: unknown }[] | undefined)?.some((query) =>
        JSON.stringify(query.MetricStat ?? {}).includes(`"Value":"${group}"`),
      ),
    );

  it.each(['web', 'worker'])(
    'fire when failureStreak bootstraps of %s failed within an hour and none succeeded',
    (group) => {
      const streak = mathAlarm(group);
      const queries = streak?.Metrics as {
        Id: string;
        Expression?: string;
        ReturnData?: boolean;
        MetricStat?: { Metric: { MetricName: string; Dimensions: unknown[] }; Period: number; Stat: string };
      }[];

      expect(streak).toMatchObject({
        Threshold: 4,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        EvaluationPeriods: 1,
        TreatMissingData: 'notBreaching',
        AlarmActions: [topicRef],
      });
      const expression = queries.find((query) => query.Expression !== undefined);
      expect(expression?.Expression).toBe('IF(FILL(succeeded, 0) > 0, 0, FILL(failed, 0))');
      expect(expression?.ReturnData).not.toBe(false);
      const inputs = Object.fromEntries(
        queries.flatMap((query) =>
          query.MetricStat
            ? [
                [
                  query.Id,
                  [query.MetricStat.Metric.MetricName, query.MetricStat.Stat, query.MetricStat.Period],
                ],
              ]
            : [],
        ),
      );
      expect(inputs).toEqual({
        failed: [MetricName.BootstrapFailed, 'Sum', 3600],
        succeeded: [MetricName.BootstrapSucceeded, 'Sum', 3600],
      });
    },
  );

  it.each([
    ['web', 900],
    ['worker', 1200],
  ])(
    'fire when the p90 bootstrap duration of %s within an hour is above its budget (%i s)',
    (group, budget) => {
      expect(groupAlarm(MetricName.BootstrapDuration, group)).toMatchObject({
        ExtendedStatistic: 'p90',
        Period: 3600,
        Threshold: budget,
        ComparisonOperator: 'GreaterThanThreshold',
        TreatMissingData: 'notBreaching',
        AlarmActions: [topicRef],
      });
    },
  );

  it.each(['web', 'worker'])('fire on a failed operator deploy or rollback of %s', (group) => {
    expect(groupAlarm(MetricName.DeployFailed, group)).toMatchObject({
      Namespace: METRIC_NAMESPACE,
      Statistic: 'Sum',
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: [topicRef],
    });
  });

  it('link each description to its runbook entry under runbookBaseUrl', () => {
    const links = alarms.map((alarm) => /Runbook: (\S+)$/.exec(String(alarm.AlarmDescription))?.[1]);

    expect(links.sort()).toEqual(
      [
        ...['web', 'worker'].flatMap(() => [
          'groupbootstrapfailed',
          'groupfailurestreak',
          'groupbootstraptime',
          'groupstuckinstances',
          'groupdeployfailed',
        ]),
        'functionerrors',
        'queuebacklog',
        'deadletters',
      ]
        .map((anchor) => `${RUNBOOK}#${anchor}`)
        .sort(),
    );
  });

  it('reach the e-mail address', () => {
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'ops@example.com',
    });
  });

  it('are on a dashboard with bootstraps, durations, stuck instances and function health', () => {
    const body = JSON.stringify(onlyResource(template, 'AWS::CloudWatch::Dashboard').DashboardBody);
    for (const name of [
      MetricName.BootstrapSucceeded,
      MetricName.BootstrapFailed,
      MetricName.BootstrapDuration,
      MetricName.StuckInstances,
      MetricName.DeploySucceeded,
      MetricName.DeployFailed,
      MetricName.LaunchedWithoutDeploy,
      'Errors',
      'Duration',
    ]) {
      expect(body).toContain(`\\"${name}\\"`);
    }
    expect(body).toContain('p99');
  });
});

describe('cdk-nag', () => {
  it('finds nothing unacknowledged', () => {
    expect(nagFindings(stack)).toEqual([]);
  });
});

/** `service:Action` for every AWS SDK command or paginator the orchestrator's code uses. */
function sdkCallsOfFunctions(): string[] {
  const root = path.join(__dirname, '..', '..', 'functions');
  const services: Record<string, string> = {
    ssm: 'ssm',
    'auto-scaling': 'autoscaling',
    sqs: 'sqs',
    ec2: 'ec2',
  };
  const calls = new Set<string>();
  const files = readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((file) =>
    file.endsWith('.ts'),
  );
  for (const file of files) {
    const source = readFileSync(path.join(root, file), 'utf8');
    for (const [, names = '', client = ''] of source.matchAll(
      /import\s*\{([^}]*)\}\s*from\s*'@aws-sdk\/client-([a-z0-9-]+)'/g,
    )) {
      for (const name of names.split(',').map((part) => part.replace(/^\s*type\s+/, '').trim())) {
        const action = /^(\w+)Command$/.exec(name)?.[1] ?? /^paginate(\w+)$/.exec(name)?.[1];
        if (action) calls.add(`${services[client]}:${action}`);
      }
    }
  }
  return [...calls].sort();
}
