import * as path from 'node:path';
import {
  Annotations,
  aws_autoscaling as autoscaling,
  Duration,
  aws_events as events,
  aws_iam as iam,
  aws_kms as kms,
  aws_logs as logs,
  Names,
  aws_lambda_nodejs as nodejs,
  RemovalPolicy,
  Stack,
  aws_sns as sns,
  aws_sqs as sqs,
  aws_ssm as ssm,
  aws_sns_subscriptions as subscriptions,
  Token,
  aws_events_targets as targets,
  Validations,
} from 'aws-cdk-lib';
import { Construct } from 'constructs';
import type { ConfigInput, WarmPoolPolicy } from '../functions/orchestrator/config';
import { DOCUMENT_PARAMETERS } from '../functions/shared/document-contract';
import {
  commandStatusPattern,
  type EventPattern,
  launchLifecyclePattern,
} from '../functions/shared/event-patterns';
import {
  assertLocalEsbuild,
  ORCHESTRATOR_ARCHITECTURE,
  ORCHESTRATOR_BUNDLING,
  ORCHESTRATOR_ENTRY,
  ORCHESTRATOR_RUNTIME,
  PROJECT_ROOT,
} from './bundling';
import { buildSelfDeployDocument, type SelfDeployDocumentOptions } from './document';
import { SelfDeployMonitoring } from './monitoring';
import { anyInstanceArn, nagResourceName, orchestratorStatements, parameterArn } from './permissions';
import {
  assertValidProps,
  DEFAULTS,
  functionConfig,
  type GroupConfigInput,
  groupConfig,
  heartbeatSecondsOf,
  outputLogGroupNameOf,
  SelfDeployPropsError,
} from './settings';

export { COMPLETION_GRACE_SECONDS, MAX_HEARTBEAT_SECONDS, SelfDeployPropsError } from './settings';

/** What Auto Scaling does with an instance whose deploy failed. */
export type FailureResult = 'ABANDON' | 'CONTINUE';

/** One Auto Scaling group selfdeploy keeps on current code, with its deploy settings. */
export interface SelfDeployGroup {
  /** The group: one built in this app, or the name of an existing group. */
  readonly autoScalingGroup: autoscaling.IAutoScalingGroup | string;
  /**
   * Deploy environment; the default deploy command runs the Capistrano stage `local_<environment>`.
   * @default 'production'
   */
  readonly environment?: string;
  /**
   * Name of the launch lifecycle hook created on the group (must not exist yet).
   * @default 'selfdeploy'
   */
  readonly lifecycleHookName?: string;
  /**
   * How long the hook holds a new instance without a heartbeat; must cover agentWait +
   * executionTimeout, at most 2 hours.
   * @default agentWait + executionTimeout + 2 minutes for event delivery, at most 2 hours
   */
  readonly heartbeatTimeout?: Duration;
  /**
   * What a failed deploy does: ABANDON (Auto Scaling replaces the instance) or CONTINUE (it serves anyway).
   * @default 'ABANDON'
   */
  readonly onFailure?: FailureResult;
  /**
   * Which launch transitions deploy when the group has a warm pool.
   * @default 'deploy-on-both'
   */
  readonly warmPool?: WarmPoolPolicy;
  /**
   * Dedicated unprivileged user (no sudo rights) that owns the application and runs the deploy;
   * root is refused unless `document.allowRootAppUser` is set.
   * @default 'deploy'
   */
  readonly appUser?: string;
  /**
   * Absolute path of the deploy checkout (the application's repository with its Capfile).
   * @default '/var/www/app/deploy'
   */
  readonly deployPath?: string;
  /**
   * Absolute path Capistrano deploys to (its deploy_to).
   * @default '/var/www/app'
   */
  readonly appPath?: string;
  /**
   * Loopback URL (http(s)://127.0.0.1, localhost or [::1]) the application must answer with a
   * 2xx after each deploy, fetched as appUser with the document's retries; a deploy is verified
   * only when it answers.
   * @default no health check
   */
  readonly healthCheckUrl?: string;
}

/** Settings of {@link SelfDeploy}. */
export interface SelfDeployProps {
  /** The groups to keep current (at least one). */
  readonly groups: readonly SelfDeployGroup[];
  /**
   * How long one deploy may run before SSM stops it (and the instance is abandoned).
   * @default Duration.minutes(30)
   */
  readonly executionTimeout?: Duration;
  /**
   * How long the orchestrator keeps retrying while a new instance's SSM agent registers.
   * @default Duration.minutes(10)
   */
  readonly agentWait?: Duration;
  /**
   * How often the reconciler repairs what lost events left behind (whole minutes).
   * @default Duration.minutes(5)
   */
  readonly reconcileInterval?: Duration;
  /**
   * E-mail address subscribed to the alarm topic (the address must confirm the subscription).
   * @default no subscription
   */
  readonly alarmEmail?: string;
  /**
   * Topic the alarms notify.
   * @default a new topic
   */
  readonly alarmTopic?: sns.ITopic;
  /**
   * Retention of the function's log group and of the command-output log group.
   * @default logs.RetentionDays.ONE_MONTH
   */
  readonly logRetention?: logs.RetentionDays;
  /**
   * What happens to the log groups when they leave the stack.
   * @default RemovalPolicy.RETAIN
   */
  readonly logRemovalPolicy?: RemovalPolicy;
  /**
   * Name of the SelfDeploy Command document.
   * @default 'SelfDeploy-' followed by a name unique to this construct
   */
  readonly documentName?: string;
  /**
   * Build-time settings of the document: deploy command, branches, pinned-revision and
   * deploy-key parameter names, known hosts, ...
   * @default the document builder's defaults
   */
  readonly document?: SelfDeployDocumentOptions;
  /**
   * Customer managed KMS key (or its key ARN) that encrypts the deploy-key SecureString
   * (`document.deployKeyParameterName`); `grantInstance` then allows kms:Decrypt on it, through
   * SSM only and for the parameters of the role's own environments. Use one: under the default
   * aws/ssm key, every principal of the account may decrypt, and AmazonSSMManagedInstanceCore
   * allows ssm:GetParameter on every parameter, so any managed instance could read the deploy key.
   * @default no key (the deploy key, if any, is encrypted with aws/ssm)
   */
  readonly deployKeyEncryptionKey?: kms.IKey | string;
  /**
   * CloudWatch Logs group that receives every command's full output.
   * @default '/selfdeploy/<documentName>'
   */
  readonly outputLogGroupName?: string;
  /**
   * SendCommand MaxConcurrency of a manual redeploy of a whole group.
   * @default '25%'
   */
  readonly redeployMaxConcurrency?: string;
  /**
   * SendCommand MaxErrors of a manual redeploy of a whole group.
   * @default '0'
   */
  readonly redeployMaxErrors?: string;
  /**
   * The orchestrator function's timeout (it never waits for a deploy, only for agents to register).
   * @default Duration.minutes(5)
   */
  readonly functionTimeout?: Duration;
}

/** Which environments' parameters an instance role may read. */
export interface InstanceGrantOptions {
  /**
   * The environments the role's instances deploy (those of the groups that use the role).
   * @default the environment of the managed groups; required when they deploy more than one
   */
  readonly environments?: readonly string[];
}

interface ManagedGroup {
  readonly id: string;
  readonly group: autoscaling.IAutoScalingGroup;
  readonly name: string;
  readonly lifecycleHookName: string;
  readonly heartbeatSeconds: number;
  readonly config: GroupConfigInput;
}

/**
 * Attaches selfdeploy to Auto Scaling groups: a launch lifecycle hook per group, the
 * SelfDeploy document, the orchestrator function and the three rules that feed it, its
 * least-privilege role, a dead-letter queue, alarms to an SNS topic and a dashboard.
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
  /** Events the function failed on after its retries, and events EventBridge could not deliver. */
  public readonly deadLetterQueue: sqs.Queue;
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
    assertValidProps(props);
    const stack = Stack.of(this);
    const agentWaitSeconds = (props.agentWait ?? DEFAULTS.agentWait).toSeconds();
    const neededSeconds =
      agentWaitSeconds + (props.executionTimeout ?? DEFAULTS.executionTimeout).toSeconds();
    const reconcileInterval = props.reconcileInterval ?? DEFAULTS.reconcileInterval;
    const functionTimeout = props.functionTimeout ?? DEFAULTS.functionTimeout;
    this.documentName =
      props.documentName ?? `SelfDeploy-${Names.uniqueResourceName(this, { maxLength: 100 })}`;

    const groups = managedGroups(this, props.groups, neededSeconds);
    this.config = functionConfig(
      props,
      groups.map((group) => [group.name, group.config]),
      this.documentName,
    );
    const outputLogGroupName = outputLogGroupNameOf(props, this.documentName);
    this.environments = [
      ...new Set(groups.map((group) => group.config.environment ?? DOCUMENT_PARAMETERS.environment.default)),
    ];
    this.documentOptions = props.document;
    this.deployKeyEncryptionKey =
      typeof props.deployKeyEncryptionKey === 'string'
        ? kms.Key.fromKeyArn(this, 'DeployKeyEncryptionKey', props.deployKeyEncryptionKey)
        : props.deployKeyEncryptionKey;

    for (const group of groups) {
      addLaunchHook(this, group);
      if (group.config.onFailure === 'CONTINUE') {
        Annotations.of(this).addWarningV2(
          'selfdeploy:continueOnFailure',
          `group ${group.id} puts instances in service even when their deploy fails (onFailure CONTINUE)`,
        );
      }
    }

    this.document = new ssm.CfnDocument(this, 'Document', {
      name: this.documentName,
      documentType: 'Command',
      documentFormat: 'JSON',
      targetType: '/AWS::EC2::Instance',
      // A named document cannot be replaced; its content changes become new default versions.
      updateMethod: 'NewVersion',
      content: buildSelfDeployDocument(props.document),
    });

    const logRetention = props.logRetention ?? DEFAULTS.logRetention;
    const removalPolicy = props.logRemovalPolicy ?? RemovalPolicy.RETAIN;
    this.outputLogGroup = new logs.LogGroup(this, 'CommandOutput', {
      logGroupName: outputLogGroupName,
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
      retentionPeriod: Duration.days(14),
    });

    const role = new iam.Role(this, 'FunctionRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description:
        'selfdeploy orchestrator: runs the SelfDeploy document on managed groups and completes their hooks',
    });
    for (const statement of orchestratorStatements(stack, {
      documentArn: stack.formatArn({ service: 'ssm', resource: 'document', resourceName: this.documentName }),
      groupArns: groups.map((group) => group.group.autoScalingGroupArn),
      groupNames: groups.map((group) => group.name),
    })) {
      role.addToPolicy(statement);
    }
    functionLogGroup.grantWrite(role);
    const wildcardFinding = (arn: string) => `AwsSolutions-IAM5[Resource::${nagResourceName(stack, arn)}]`;
    Validations.of(role).acknowledge({
      id: wildcardFinding(anyInstanceArn(stack)),
      reason:
        'ssm:SendCommand must name target instances, unknown in advance: instance/* is narrowed by the ' +
        'aws:autoscaling:groupName tag condition to the managed groups.',
    });
    for (const group of groups) {
      Validations.of(role).acknowledge({
        id: wildcardFinding(group.group.autoScalingGroupArn),
        reason:
          "A group ARN contains the group's id, unknown for a group named by name: the wildcard stands for " +
          'that id only; the group name is exact.',
      });
    }
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'Read-only SSM and Auto Scaling list/describe calls that IAM cannot scope by resource, each named.',
    });

    assertLocalEsbuild();
    this.function = new nodejs.NodejsFunction(this, 'Function', {
      description: 'selfdeploy orchestrator: deploys new Auto Scaling instances before they go into service',
      entry: ORCHESTRATOR_ENTRY,
      handler: 'handler',
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: path.join(PROJECT_ROOT, 'package-lock.json'),
      runtime: ORCHESTRATOR_RUNTIME,
      architecture: ORCHESTRATOR_ARCHITECTURE,
      bundling: ORCHESTRATOR_BUNDLING,
      memorySize: 256,
      timeout: functionTimeout,
      role,
      logGroup: functionLogGroup,
      environment: { SELFDEPLOY_CONFIG: stack.toJsonString(this.config) },
      // Every action is idempotent, so Lambda's own retries are safe; after them, the event
      // goes to the dead-letter queue and the reconciler repairs what it missed.
      retryAttempts: 2,
      maxEventAge: eventMaxAge(groups),
      deadLetterQueue: this.deadLetterQueue,
    });
    Validations.of(this.function).acknowledge({
      id: 'AwsSolutions-L1',
      reason: 'Pinned to Node.js 22, the runtime the orchestrator and its bundle are tested on.',
    });

    const target = new targets.LambdaFunction(this.function, {
      deadLetterQueue: this.deadLetterQueue,
      maxEventAge: eventMaxAge(groups),
    });
    new events.Rule(this, 'LaunchRule', {
      description: 'selfdeploy: launch lifecycle actions of the managed groups',
      eventPattern: toCdkPattern(launchLifecyclePattern(groups.map((group) => group.name))),
      targets: [target],
    });
    new events.Rule(this, 'CommandStatusRule', {
      description: `selfdeploy: terminal statuses of ${this.documentName} commands`,
      eventPattern: toCdkPattern(commandStatusPattern(this.documentName)),
      targets: [target],
    });
    new events.Rule(this, 'ReconcileSchedule', {
      description: 'selfdeploy: repairs what lost events left behind',
      schedule: events.Schedule.rate(reconcileInterval),
      targets: [target],
    });

    this.alarmTopic = props.alarmTopic ?? this.createTopic();
    if (props.alarmEmail !== undefined) {
      this.alarmTopic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    }
    this.monitoring = new SelfDeployMonitoring(this, 'Monitoring', {
      groups: groups.map(({ id, name }) => ({ id, name })),
      function: this.function,
      deadLetterQueue: this.deadLetterQueue,
      topic: this.alarmTopic,
      reconcileInterval,
      agentWait: Duration.seconds(agentWaitSeconds),
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

/** Resolves each group to an IAutoScalingGroup, its settings and its heartbeat timeout (props already checked). */
function managedGroups(
  scope: Construct,
  groups: readonly SelfDeployGroup[],
  neededSeconds: number,
): ManagedGroup[] {
  return groups.map((settings, index) => {
    const given = settings.autoScalingGroup;
    const id = typeof given === 'string' ? constructId(given, index) : given.node.id;
    const group =
      typeof given === 'string'
        ? autoscaling.AutoScalingGroup.fromAutoScalingGroupName(scope, `${id}Group`, given)
        : given;
    const heartbeatSeconds = heartbeatSecondsOf(settings, neededSeconds);
    const config = groupConfig(settings, heartbeatSeconds);
    return {
      id,
      group,
      name: group.autoScalingGroupName,
      lifecycleHookName: config.lifecycleHookName,
      heartbeatSeconds,
      config,
    };
  });
}

/**
 * The hook goes into the group's own definition when the group is built in the same stack,
 * so it exists before the group launches its first instances (a separate hook resource is
 * created after the group, and the first instances would skip it).
 */
function addLaunchHook(scope: Construct, group: ManagedGroup): void {
  const hook = {
    lifecycleHookName: group.lifecycleHookName,
    lifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING',
    heartbeatTimeout: group.heartbeatSeconds,
    // The service default, stated because CDK's documentation claims CONTINUE.
    defaultResult: 'ABANDON',
  };
  const cfnGroup = group.group.node.defaultChild;
  if (cfnGroup instanceof autoscaling.CfnAutoScalingGroup && Stack.of(cfnGroup) === Stack.of(scope)) {
    const existing = cfnGroup.lifecycleHookSpecificationList ?? [];
    if (!Array.isArray(existing)) {
      throw new SelfDeployPropsError(
        `group ${group.id}: its lifecycle hook list is a token; selfdeploy cannot add its hook to it`,
      );
    }
    cfnGroup.lifecycleHookSpecificationList = [...existing, hook];
    return;
  }
  new autoscaling.CfnLifecycleHook(scope, `${group.id}LaunchHook`, {
    ...hook,
    autoScalingGroupName: group.name,
  });
}

/** An event older than every hook's wait refers to lifecycle actions that have already ended. */
function eventMaxAge(groups: readonly ManagedGroup[]): Duration {
  return Duration.seconds(Math.max(60, ...groups.map((group) => group.heartbeatSeconds)));
}

function constructId(name: string, index: number): string {
  return Token.isUnresolved(name) ? `Group${index}` : name.replace(/[^A-Za-z0-9]/g, '');
}

/** CDK spells detail-type as detailType and passes every other key through. */
function toCdkPattern(pattern: EventPattern): events.EventPattern {
  const { 'detail-type': detailType, ...rest } = pattern;
  return { ...rest, detailType } as events.EventPattern;
}
