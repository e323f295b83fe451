import {
  Duration,
  aws_iam as iam,
  aws_kms as kms,
  aws_logs as logs,
  Names,
  type aws_lambda_nodejs as nodejs,
  Stack,
  aws_sns as sns,
  aws_sqs as sqs,
  aws_ssm as ssm,
  aws_sns_subscriptions as subscriptions,
  Validations,
} from 'aws-cdk-lib';
import { Construct } from 'constructs';
import type { ConfigInput } from '../functions/orchestrator/config';
import { DEAD_LETTER_RETENTION_SECONDS } from '../functions/shared/event-queue';
import { GROUP_SETTINGS, TOP_LEVEL_SETTINGS } from '../functions/shared/group-settings';
import { addLaunchHooks, eventMaxAge, managedGroups } from './groups';
import { SelfDeployMonitoring } from './monitoring';
import { orchestratorFunction } from './orchestrator-function';
import { orchestratorRole, parameterArn } from './permissions';
import type { InstanceGrantOptions, SelfDeployProps } from './props';
import { eventQueue, queueVisibilityTimeout } from './queue';
import { addOrchestratorRules } from './rules';
import {
  assertValidProps,
  concurrencyOf,
  DEFAULTS,
  failureStreakOf,
  functionConfig,
  outputLogGroupNameOf,
  SelfDeployPropsError,
  timingsOf,
} from './settings';

export type { FailureResult, InstanceGrantOptions, SelfDeployGroup, SelfDeployProps } from './props';
export { COMPLETION_GRACE_SECONDS, MAX_HEARTBEAT_SECONDS, SelfDeployPropsError } from './settings';

/**
 * Attaches selfdeploy to Auto Scaling groups: a launch lifecycle hook per group, the
 * SelfDeploy document, the orchestrator function, the queue it consumes and the rules that
 * feed it, its least-privilege role, a dead-letter queue, alarms to an SNS topic and a dashboard.
 */
export class SelfDeploy extends Construct {
  /** The orchestrator function. */
  public readonly function: nodejs.NodejsFunction;
  /** Name of the SelfDeploy Command document. */
  public readonly documentName: string;
  /** The SelfDeploy Command document. */
  public readonly document: ssm.CfnDocument;
  /** Log group with every command's full output. */
  public readonly outputLogGroup: logs.LogGroup;
  /**
   * Events the function failed on after its retries, events EventBridge could not deliver, and
   * queue messages that failed maxReceiveCount times.
   */
  public readonly deadLetterQueue: sqs.Queue;
  /** The queue of launch events and of launches waiting for their agent. */
  public readonly queue: sqs.Queue;
  /** The queue of command status events: completions, never behind a burst's launches. */
  public readonly statusQueue: sqs.Queue;
  /** Topic the alarms notify. */
  public readonly alarmTopic: sns.ITopic;
  /** Alarms and dashboard. */
  public readonly monitoring: SelfDeployMonitoring;
  /** SELFDEPLOY_CONFIG as given to the function (group names may be tokens). */
  public readonly config: ConfigInput;

  private readonly documentOptions: SelfDeployProps['document'];
  private readonly environments: readonly string[];
  private readonly deployKeyEncryptionKey: kms.IKey | undefined;

  public constructor(scope: Construct, id: string, props: SelfDeployProps) {
    super(scope, id);
    const document = assertValidProps(props);
    const timings = timingsOf(props);
    this.documentName =
      props.documentName ?? `SelfDeploy-${Names.uniqueResourceName(this, { maxLength: 100 })}`;
    const groups = managedGroups(this, props.groups, timings);

    this.environments = [
      ...new Set(groups.map((group) => group.config.environment ?? GROUP_SETTINGS.environment.default)),
    ];
    this.documentOptions = props.document;
    this.deployKeyEncryptionKey =
      typeof props.deployKeyEncryptionKey === 'string'
        ? kms.Key.fromKeyArn(this, 'DeployKeyEncryptionKey', props.deployKeyEncryptionKey)
        : props.deployKeyEncryptionKey;

    addLaunchHooks(this, groups);

    this.document = new ssm.CfnDocument(this, 'Document', {
      name: this.documentName,
      documentType: 'Command',
      documentFormat: 'JSON',
      targetType: '/AWS::EC2::Instance',
      // A named document cannot be replaced; its content changes become new default versions.
      updateMethod: 'NewVersion',
      content: document,
    });

    const logRetention = props.logRetention ?? DEFAULTS.logRetention;
    const removalPolicy = props.logRemovalPolicy ?? DEFAULTS.logRemovalPolicy;
    this.outputLogGroup = new logs.LogGroup(this, 'CommandOutput', {
      logGroupName: outputLogGroupNameOf(props, this.documentName),
      retention: logRetention,
      removalPolicy,
    });
    const functionLogGroup = new logs.LogGroup(this, 'FunctionLogs', {
      retention: logRetention,
      removalPolicy,
    });
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.seconds(DEAD_LETTER_RETENTION_SECONDS),
    });
    const queueProps = { deadLetterQueue: this.deadLetterQueue, functionTimeout: timings.functionTimeout };
    this.queue = eventQueue(this, 'EventQueue', queueProps);
    this.statusQueue = eventQueue(this, 'StatusQueue', queueProps);
    this.config = functionConfig(
      props,
      groups.map((group) => [group.name, group.config]),
      this.documentName,
      this.queue.queueUrl,
    );

    const stack = Stack.of(this);
    const role = orchestratorRole(this, {
      documentArn: stack.formatArn({ service: 'ssm', resource: 'document', resourceName: this.documentName }),
      groupArns: groups.map((group) => group.group.autoScalingGroupArn),
      standbyGroupArns: groups
        .filter((group) => group.config.deployWith === 'standby')
        .map((group) => group.group.autoScalingGroupArn),
      groupNames: groups.map((group) => group.name),
      releasePath: this.config.releasePath ?? TOP_LEVEL_SETTINGS.releasePath.default,
      instanceParameterNames: [
        props.document?.pinnedRevisionParameterName,
        props.document?.deployKeyParameterName,
      ].filter((name) => name !== undefined),
      logGroup: functionLogGroup,
      queue: this.queue,
    });
    const maxEventAge = eventMaxAge(groups);
    this.function = orchestratorFunction(this, {
      config: this.config,
      role,
      logGroup: functionLogGroup,
      timeout: timings.functionTimeout,
      maxEventAge,
      deadLetterQueue: this.deadLetterQueue,
      queues: { launches: this.queue, statuses: this.statusQueue },
      concurrency: concurrencyOf(props),
    });
    // In a stack update the document's new default version comes first: the new code may send
    // parameters only it declares, while the old code's commands fit the new version (every
    // parameter has a default), and commands already sent keep their own version.
    this.function.node.addDependency(this.document);
    addOrchestratorRules(this, {
      function: this.function,
      queue: this.queue,
      statusQueue: this.statusQueue,
      deadLetterQueue: this.deadLetterQueue,
      maxEventAge,
      groupNames: groups.map((group) => group.name),
      documentName: this.documentName,
      reconcileInterval: timings.reconcileInterval,
    });

    this.alarmTopic = props.alarmTopic ?? this.createTopic();
    if (props.alarmEmail !== undefined) {
      this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    }
    this.monitoring = new SelfDeployMonitoring(this, 'Monitoring', {
      groups: groups.map(({ id, name, bootstrapBudget }) => ({ id, name, bootstrapBudget })),
      function: this.function,
      deadLetterQueue: this.deadLetterQueue,
      eventQueues: [this.queue, this.statusQueue],
      visibilityTimeout: queueVisibilityTimeout(timings.functionTimeout),
      topic: this.alarmTopic,
      reconcileInterval: timings.reconcileInterval,
      agentWait: Duration.seconds(timings.agentWaitSeconds),
      failureStreak: failureStreakOf(props),
      ...(props.runbookBaseUrl !== undefined && { runbookBaseUrl: props.runbookBaseUrl }),
    });
  }

  /**
   * Grants an instance role what running the SelfDeploy document needs: writing the command
   * output, and reading the pinned-revision and deploy-key parameters of its own environments
   * only (a staging instance must not read production's deploy key), with kms:Decrypt on
   * `deployKeyEncryptionKey` through SSM for exactly those deploy-key parameters.
   */
  public grantInstance(grantee: iam.IGrantable, options: InstanceGrantOptions = {}): void {
    const stack = Stack.of(this);
    const environments = this.grantedEnvironments(options);
    this.outputLogGroup.grant(
      grantee,
      'logs:CreateLogStream',
      'logs:PutLogEvents',
      'logs:DescribeLogStreams',
    );
    // The agent looks the group up before writing to it; DescribeLogGroups takes no resource.
    iam.Grant.addToPrincipal({ grantee, actions: ['logs:DescribeLogGroups'], resourceArns: ['*'] });
    if (Construct.isConstruct(grantee)) {
      Validations.of(grantee).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'logs:DescribeLogGroups takes no resource; the SSM agent uses it to find the command-output group.',
      });
    }
    const parameterArns = (template: string | undefined) =>
      template === undefined
        ? []
        : [
            ...new Set(
              environments.map((environment) =>
                parameterArn(stack, template.replaceAll('{environment}', environment)),
              ),
            ),
          ];
    const deployKeyArns = parameterArns(this.documentOptions?.deployKeyParameterName);
    const readable = [...parameterArns(this.documentOptions?.pinnedRevisionParameterName), ...deployKeyArns];
    if (readable.length > 0) {
      iam.Grant.addToPrincipal({ grantee, actions: ['ssm:GetParameter'], resourceArns: readable });
    }
    if (this.deployKeyEncryptionKey !== undefined && deployKeyArns.length > 0) {
      iam.Grant.addToPrincipal({
        grantee,
        actions: ['kms:Decrypt'],
        resourceArns: [this.deployKeyEncryptionKey.keyArn],
        conditions: {
          // Only when SSM decrypts a deploy-key parameter of these environments for the role:
          // SSM puts the parameter's ARN in the encryption context of every SecureString.
          StringEquals: {
            'kms:ViaService': `ssm.${stack.region}.${stack.urlSuffix}`,
            'kms:EncryptionContext:PARAMETER_ARN': deployKeyArns,
          },
        },
      });
    }
  }

  /** The environments a grant covers; throws naming every problem with them. */
  private grantedEnvironments(options: InstanceGrantOptions): readonly string[] {
    const managed = this.environments.join(', ');
    if (options.environments === undefined) {
      if (this.environments.length === 1) return this.environments;
      throw new SelfDeployPropsError(
        `grantInstance: the groups deploy ${managed}; name the environments this role's instances deploy ` +
          '(options.environments), so that no role reads the parameters of another environment',
      );
    }
    const unknown = options.environments.filter((environment) => !this.environments.includes(environment));
    if (options.environments.length === 0 || unknown.length > 0) {
      throw new SelfDeployPropsError(
        `grantInstance: environments ${JSON.stringify(options.environments)} must be one or more of the ` +
          `environments the groups deploy (${managed})`,
      );
    }
    return [...new Set(options.environments)];
  }

  private createTopic(): sns.Topic {
    const topic = new sns.Topic(this, 'AlarmTopic', { displayName: 'selfdeploy alarms', enforceSSL: true });
    Validations.of(topic).acknowledge({
      id: 'AwsSolutions-SNS2',
      reason:
        'Alarm notifications carry alarm names and metric values only; CloudWatch cannot publish to a topic ' +
        'encrypted with the AWS managed SNS key, and a customer key would cost more than it protects.',
    });
    return topic;
  }
}
