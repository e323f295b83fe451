import type {
  aws_autoscaling as autoscaling,
  Duration,
  aws_kms as kms,
  aws_logs as logs,
  RemovalPolicy,
  aws_sns as sns,
} from 'aws-cdk-lib';
import type { DeployMode, FollowMode, WarmPoolPolicy } from '../functions/shared/group-settings';
import type { LifecycleResult } from '../functions/shared/lifecycle-result';
import type { SelfDeployDocumentOptions } from './document';

// The props of SelfDeploy. Every `@default` here is checked against functions/shared/group-settings.ts
// (and so against docs/deploying.md) by test/unit/settings-docs.test.ts.

/** What Auto Scaling does with an instance whose deploy failed. */
export type FailureResult = LifecycleResult;

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
   * What launches deploy: `release`, the group's recorded SHA, or `branch`, the branch head
   * (riskier: one bad push reaches every scale-out).
   * @default 'release'
   */
  readonly follow?: FollowMode;
  /**
   * How operator deploys reach InService instances: `in-place`, or `standby` (groups behind a
   * load balancer: each batch leaves service through Standby, deploys, and returns, so no
   * instance restarts while it takes traffic).
   * @default 'in-place'
   */
  readonly deployWith?: DeployMode;
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
  /**
   * The group's bootstrap-time alarm fires when the p90 of its bootstraps' duration within an
   * hour is above it; below executionTimeout, whole seconds.
   * @default `Duration.minutes(15)`, or half of executionTimeout when that is shorter
   */
  readonly bootstrapBudget?: Duration;
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
   * @default a new topic (TLS only)
   */
  readonly alarmTopic?: sns.ITopic;
  /**
   * Failed bootstraps of a group within an hour, with none succeeding, that fire its
   * failure-streak alarm (the replacement loop); a whole number, at least 1.
   * @default 3
   */
  readonly failureStreak?: number;
  /**
   * URL of docs/operations.md as your team reads it; each alarm's description links to
   * `<runbookBaseUrl>#<anchor>` of its runbook entry. An http(s) URL without a fragment.
   * @default none: descriptions name `docs/operations.md#<anchor>`
   */
  readonly runbookBaseUrl?: string;
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
   * @default `SelfDeploy-<a name unique to this construct>`
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
   * @default no key (the deploy key, if any, is encrypted with `aws/ssm`)
   */
  readonly deployKeyEncryptionKey?: kms.IKey | string;
  /**
   * CloudWatch Logs group that receives every command's full output.
   * @default `/selfdeploy/<documentName>`
   */
  readonly outputLogGroupName?: string;
  /**
   * Parameter Store path under which each group's release, pause and deployments are kept
   * (`<releasePath>/<group>/…`); the orchestrator may read and write parameters under it only.
   * @default '/selfdeploy'
   */
  readonly releasePath?: string;
  /**
   * SendCommand MaxConcurrency of a manual redeploy of a whole group, and the size of each
   * Standby batch (of the InService instances, at most 25).
   * @default '25%'
   */
  readonly redeployMaxConcurrency?: string;
  /**
   * SendCommand MaxErrors of a manual redeploy of a whole group.
   * @default '0'
   */
  readonly redeployMaxErrors?: string;
  /**
   * The orchestrator function's timeout (it never waits: not for a deploy, not for an agent).
   * @default Duration.minutes(5)
   */
  readonly functionTimeout?: Duration;
  /**
   * Most orchestrator executions each queue's event source mapping runs at once (its MaximumConcurrency, 2 to 1000); two queues, launches and status events, so at most twice this in all.
   * @default 2
   */
  readonly maxConcurrency?: number;
  /**
   * Concurrent executions reserved for the orchestrator (at least twice maxConcurrency); none by default, as new accounts often have none to reserve.
   * @default none: the account's unreserved pool
   */
  readonly reservedConcurrency?: number;
}

/** Which environments' parameters an instance role may read. */
export interface InstanceGrantOptions {
  /**
   * The environments the role's instances deploy (those of the groups that use the role).
   * @default the environment of the managed groups; required when they deploy more than one
   */
  readonly environments?: readonly string[];
}
