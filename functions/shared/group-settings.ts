/**
 * selfdeploy's settings, defined once: each one's default and a one-line description. The
 * function's SELFDEPLOY_CONFIG schema, the CDK construct's props and defaults, the
 * existing-groups JSON schema and the tables of docs/configuration.md and docs/deploying.md
 * are built from these tables or checked against them by test/unit/settings-docs.test.ts.
 *
 * Names are the construct's. Durations are in seconds; SELFDEPLOY_CONFIG and the JSON
 * configuration spell them `<name>Seconds` (the reconcile interval `reconcileIntervalMinutes`,
 * the retention `logRetentionDays`). No CDK import: the function bundles this file.
 */
import { DOCUMENT_PARAMETERS } from './document-contract';

/** What a setting's default is, as far as code can use it. */
export interface SettingSpec {
  /** What the setting does, in one line. */
  readonly doc: string;
  /** The default value (durations in seconds); absent when the default is not one value. */
  readonly default?: string | number;
  /** The seconds a duration may take, least and most. */
  readonly range?: readonly [min: number, max: number];
  /** The default in words, when it is not one value (derived, a new resource, or nothing). */
  readonly stated?: string;
  /** How the construct spells the value, for its TSDoc `@default`. */
  readonly kind: 'text' | 'count' | 'duration' | 'retention' | 'removalPolicy' | 'construct';
  /** Whether SELFDEPLOY_CONFIG must give it although the construct has a default. */
  readonly requiredInFunctionConfig?: true;
  /** The key of the existing-groups JSON configuration; absent when only the construct takes it. */
  readonly json?: string;
  /** A group setting only the construct uses (its alarms): SELFDEPLOY_CONFIG's groups do not carry it. */
  readonly constructOnly?: true;
}

/** Longest heartbeat timeout a lifecycle hook accepts. */
export const MAX_HEARTBEAT_SECONDS = 7200;
/** Added to agent wait + execution timeout by default: status event delivery and completion. */
export const COMPLETION_GRACE_SECONDS = 120;

/**
 * The heartbeat timeout selfdeploy gives a launch hook, and so the one the function assumes
 * when SELFDEPLOY_CONFIG does not say: the agent wait and the whole deploy, plus completion,
 * capped at what a hook accepts. One function, so that the hook the construct creates and
 * the cadence the function heartbeats it on cannot disagree.
 */
export function defaultHeartbeatSeconds(agentWaitSeconds: number, executionTimeoutSeconds: number): number {
  return Math.min(
    MAX_HEARTBEAT_SECONDS,
    agentWaitSeconds + executionTimeoutSeconds + COMPLETION_GRACE_SECONDS,
  );
}

/** What happens to a launching instance that enters or leaves a warm pool. */
export const WARM_POOL_POLICIES = ['deploy-on-both', 'deploy-on-warm-pool', 'deploy-on-service'] as const;
export type WarmPoolPolicy = (typeof WARM_POOL_POLICIES)[number];

/** What a group's launches deploy: its release (an exact SHA), or the branch head (riskier). */
export const FOLLOW_MODES = ['release', 'branch'] as const;
export type FollowMode = (typeof FOLLOW_MODES)[number];

/** How an operator deploy reaches InService instances: restarted where they serve, or out of service (Standby) first. */
export const DEPLOY_MODES = ['in-place', 'standby'] as const;
export type DeployMode = (typeof DEPLOY_MODES)[number];

/** The settings of one managed group (`SelfDeployGroup`, `groups.*` of SELFDEPLOY_CONFIG). */
export const GROUP_SETTINGS = {
  environment: {
    json: 'environment',
    kind: 'text',
    default: DOCUMENT_PARAMETERS.environment.default,
    doc: 'Deploy environment; the default deploy command runs the Capistrano stage `local_<environment>`.',
  },
  lifecycleHookName: {
    json: 'lifecycleHookName',
    kind: 'text',
    default: 'selfdeploy',
    requiredInFunctionConfig: true,
    doc: 'Name of the launch lifecycle hook created on the group (must not exist yet).',
  },
  heartbeatTimeout: {
    json: 'heartbeatTimeoutSeconds',
    kind: 'duration',
    range: [30, MAX_HEARTBEAT_SECONDS],
    stated: 'agentWait + executionTimeout + 2 minutes for event delivery, at most 2 hours',
    doc: 'How long the hook holds a new instance without a heartbeat; must cover agentWait + executionTimeout, at most 2 hours.',
  },
  onFailure: {
    json: 'onFailure',
    kind: 'text',
    default: 'ABANDON',
    doc: 'What a failed deploy does: ABANDON (Auto Scaling replaces the instance) or CONTINUE (it serves anyway).',
  },
  warmPool: {
    json: 'warmPool',
    kind: 'text',
    default: WARM_POOL_POLICIES[0],
    doc: 'Which launch transitions deploy when the group has a warm pool.',
  },
  follow: {
    json: 'follow',
    kind: 'text',
    default: FOLLOW_MODES[0],
    doc: "What launches deploy: `release`, the group's recorded SHA, or `branch`, the branch head (riskier: one bad push reaches every scale-out).",
  },
  deployWith: {
    json: 'deployWith',
    kind: 'text',
    default: DEPLOY_MODES[0],
    doc: 'How operator deploys reach InService instances: `in-place`, or `standby` (groups behind a load balancer: each batch leaves service through Standby, deploys, and returns, so no instance restarts while it takes traffic).',
  },
  appUser: {
    json: 'appUser',
    kind: 'text',
    default: DOCUMENT_PARAMETERS.appUser.default,
    doc: 'Dedicated unprivileged user (no sudo rights) that owns the application and runs the deploy.',
  },
  deployPath: {
    json: 'deployPath',
    kind: 'text',
    default: DOCUMENT_PARAMETERS.deployPath.default,
    doc: "Absolute path of the deploy checkout (the application's repository with its Capfile).",
  },
  appPath: {
    json: 'appPath',
    kind: 'text',
    default: DOCUMENT_PARAMETERS.appPath.default,
    doc: 'Absolute path Capistrano deploys to (its deploy_to).',
  },
  healthCheckUrl: {
    json: 'healthCheckUrl',
    kind: 'text',
    default: DOCUMENT_PARAMETERS.healthCheckUrl.default,
    stated: 'no health check',
    doc: 'Loopback URL (http(s)://127.0.0.1, localhost or [::1]) the application must answer with a 2xx after each deploy.',
  },
  bootstrapBudget: {
    json: 'bootstrapBudgetSeconds',
    kind: 'duration',
    default: 900,
    constructOnly: true,
    stated: '`Duration.minutes(15)`, or half of executionTimeout when that is shorter',
    doc: "The group's bootstrap-time alarm fires when the p90 of its bootstraps' duration within an hour is above it.",
  },
} as const satisfies Record<string, SettingSpec>;

/** The settings of the whole installation (`SelfDeployProps`, the top level of SELFDEPLOY_CONFIG). */
export const TOP_LEVEL_SETTINGS = {
  executionTimeout: {
    json: 'executionTimeoutSeconds',
    kind: 'duration',
    range: [30, 172800],
    default: 1800,
    doc: 'How long one deploy may run before SSM stops it (and the instance is abandoned).',
  },
  agentWait: {
    json: 'agentWaitSeconds',
    kind: 'duration',
    range: [0, MAX_HEARTBEAT_SECONDS],
    default: 600,
    doc: "How long the orchestrator keeps retrying while a new instance's SSM agent registers.",
  },
  reconcileInterval: {
    json: 'reconcileIntervalMinutes',
    kind: 'duration',
    default: 300,
    doc: 'How often the reconciler repairs what lost events left behind (whole minutes).',
  },
  alarmEmail: {
    json: 'alarmEmail',
    kind: 'text',
    stated: 'no subscription',
    doc: 'E-mail address subscribed to the alarm topic (the address must confirm the subscription).',
  },
  alarmTopic: { kind: 'construct', stated: 'a new topic (TLS only)', doc: 'Topic the alarms notify.' },
  failureStreak: {
    json: 'failureStreak',
    kind: 'count',
    default: 3,
    doc: 'Failed bootstraps of a group within an hour, with none succeeding, that fire its failure-streak alarm (the replacement loop).',
  },
  runbookBaseUrl: {
    json: 'runbookBaseUrl',
    kind: 'text',
    stated: 'none: descriptions name `docs/operations.md#<anchor>`',
    doc: "URL of docs/operations.md as your team reads it; each alarm's description links to `<runbookBaseUrl>#<anchor>` of its runbook entry.",
  },
  logRetention: {
    json: 'logRetentionDays',
    kind: 'retention',
    default: 30,
    doc: "Retention of the function's log group and of the command-output log group.",
  },
  logRemovalPolicy: {
    kind: 'removalPolicy',
    default: 'RETAIN',
    doc: 'What happens to the log groups when they leave the stack.',
  },
  documentName: {
    json: 'documentName',
    kind: 'text',
    stated: '`SelfDeploy-<a name unique to this construct>`',
    doc: 'Name of the SelfDeploy Command document.',
  },
  document: {
    json: 'document',
    kind: 'construct',
    stated: "the document builder's defaults",
    doc: 'Build-time settings of the document: deploy command, branches, pinned-revision and deploy-key parameter names, known hosts, ...',
  },
  deployKeyEncryptionKey: {
    json: 'deployKeyEncryptionKeyArn',
    kind: 'construct',
    stated: 'no key (the deploy key, if any, is encrypted with `aws/ssm`)',
    doc: 'Customer managed KMS key (or its key ARN) that encrypts the deploy-key SecureString.',
  },
  outputLogGroupName: {
    json: 'outputLogGroupName',
    kind: 'text',
    // The function's own fallback, for a SELFDEPLOY_CONFIG written by hand.
    default: '/selfdeploy/commands',
    stated: '`/selfdeploy/<documentName>`',
    doc: "CloudWatch Logs group that receives every command's full output.",
  },
  releasePath: {
    json: 'releasePath',
    kind: 'text',
    default: '/selfdeploy',
    doc: "Parameter Store path under which each group's release, pause and deployments are kept.",
  },
  redeployMaxConcurrency: {
    json: 'redeployMaxConcurrency',
    kind: 'text',
    default: '25%',
    doc: 'SendCommand MaxConcurrency of a manual redeploy of a whole group, and the size of each Standby batch (of the InService instances, at most 25).',
  },
  redeployMaxErrors: {
    json: 'redeployMaxErrors',
    kind: 'text',
    default: '0',
    doc: 'SendCommand MaxErrors of a manual redeploy of a whole group.',
  },
  functionTimeout: {
    json: 'functionTimeoutSeconds',
    kind: 'duration',
    range: [10, 900],
    default: 300,
    doc: "The orchestrator function's timeout (it never waits: not for a deploy, not for an agent).",
  },
  maxConcurrency: {
    json: 'maxConcurrency',
    kind: 'count',
    default: 2,
    doc: "Most orchestrator executions each queue's event source mapping runs at once (its MaximumConcurrency, 2 to 1000); two queues, launches and status events, so at most twice this in all.",
  },
  reservedConcurrency: {
    json: 'reservedConcurrency',
    kind: 'count',
    stated: "none: the account's unreserved pool",
    doc: 'Concurrent executions reserved for the orchestrator (at least twice maxConcurrency); none by default, as new accounts often have none to reserve.',
  },
} as const satisfies Record<string, SettingSpec>;

/** The group settings SELFDEPLOY_CONFIG carries: all but the construct's own. */
type GroupSettingName = {
  [Name in keyof typeof GROUP_SETTINGS]: (typeof GROUP_SETTINGS)[Name] extends { constructOnly: true }
    ? never
    : Name;
}[keyof typeof GROUP_SETTINGS];

/** How SELFDEPLOY_CONFIG and the JSON configuration name a setting: a duration carries its unit. */
type SecondsName<Name extends string, Kind> = Kind extends 'duration' ? `${Name}Seconds` : Name;
/** The `groups.*` fields of SELFDEPLOY_CONFIG, one per group setting. */
export type GroupConfigField = {
  [Name in GroupSettingName]: SecondsName<Name, (typeof GROUP_SETTINGS)[Name]['kind']>;
}[GroupSettingName];
