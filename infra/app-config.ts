import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Duration, aws_logs as logs } from 'aws-cdk-lib';
import * as z from 'zod/mini';
import {
  DEPLOY_MODES,
  FOLLOW_MODES,
  GROUP_SETTINGS,
  WARM_POOL_POLICIES,
} from '../functions/shared/group-settings';
import { LIFECYCLE_RESULTS } from '../functions/shared/lifecycle-result';
import { describeIssues } from '../functions/shared/validation';
import { PROJECT_ROOT } from './bundling';
import type { SelfDeployProps } from './props';
import { SelfDeployPropsError, selfDeployPropsProblems } from './settings';

/** Context key holding the existing-groups configuration itself (an object, or its JSON text). */
export const CONFIG_CONTEXT_KEY = 'selfdeploy';
/** Context key naming a JSON configuration file (relative to the working directory). */
export const CONFIG_FILE_CONTEXT_KEY = 'selfdeployConfigFile';
/** Read when neither context key is set, so that a fresh clone synthesizes. */
export const EXAMPLE_CONFIG_FILE = path.join(PROJECT_ROOT, 'infra', 'existing-groups.example.json');

// The form of each setting only; what the values mean is checked with the construct's own checks.
// Keys are the `json` names of functions/shared/group-settings.ts (test/unit/settings-docs.test.ts).
const seconds = z.int().check(z.positive());

const groupSchema = z.strictObject({
  name: z.string().check(z.minLength(1)),
  environment: z.optional(z.string()),
  lifecycleHookName: z.optional(z.string()),
  heartbeatTimeoutSeconds: z.optional(seconds),
  onFailure: z.optional(z.enum(LIFECYCLE_RESULTS)),
  warmPool: z.optional(z.enum(WARM_POOL_POLICIES)),
  follow: z.optional(z.enum(FOLLOW_MODES)),
  deployWith: z.optional(z.enum(DEPLOY_MODES)),
  appUser: z.optional(z.string()),
  deployPath: z.optional(z.string()),
  appPath: z.optional(z.string()),
  healthCheckUrl: z.optional(z.string()),
  bootstrapBudgetSeconds: z.optional(seconds),
  /** The role of the group's instances: granted the command output and this group's environment's parameters. */
  instanceRoleName: z.optional(z.string().check(z.minLength(1))),
});

const documentSchema = z.strictObject({
  deployCommand: z.optional(z.string()),
  gemInstallCommand: z.optional(z.string()),
  branches: z.optional(z.record(z.string(), z.string())),
  pinnedRevisionParameterName: z.optional(z.string()),
  deployKeyParameterName: z.optional(z.string()),
  gitKnownHosts: z.optional(z.string()),
  allowRootAppUser: z.optional(z.boolean()),
  lockTimeoutSeconds: z.optional(z.int()),
  stateDirectory: z.optional(z.string()),
  bootWaitSeconds: z.optional(z.int()),
  bootCheckCommand: z.optional(z.string()),
  healthCheckAttempts: z.optional(z.int()),
  healthCheckIntervalSeconds: z.optional(z.int()),
  allowSudoAppUser: z.optional(z.boolean()),
});

const retentionDays = new Set<number>(Object.values(logs.RetentionDays).filter((v) => typeof v === 'number'));

/** The existing-groups stack's configuration: SelfDeployProps in JSON form, plus the groups' instance roles. */
export const existingGroupsConfigSchema = z.strictObject({
  groups: z.array(groupSchema).check(z.minLength(1)),
  executionTimeoutSeconds: z.optional(seconds),
  agentWaitSeconds: z.optional(z.int().check(z.nonnegative())),
  reconcileIntervalMinutes: z.optional(seconds),
  functionTimeoutSeconds: z.optional(seconds),
  maxConcurrency: z.optional(z.int()),
  reservedConcurrency: z.optional(z.int()),
  alarmEmail: z.optional(z.string()),
  failureStreak: z.optional(z.int()),
  runbookBaseUrl: z.optional(z.string()),
  logRetentionDays: z.optional(
    z
      .int()
      .check(
        z.refine((days) => retentionDays.has(days), 'must be a retention CloudWatch Logs offers, e.g. 30'),
      ),
  ),
  documentName: z.optional(z.string()),
  outputLogGroupName: z.optional(z.string()),
  releasePath: z.optional(z.string()),
  redeployMaxConcurrency: z.optional(z.string()),
  redeployMaxErrors: z.optional(z.string()),
  document: z.optional(documentSchema),
  /** Key ARN of the customer managed KMS key that encrypts the deploy-key parameters. */
  deployKeyEncryptionKeyArn: z.optional(z.string()),
  // One list of roles granted every environment's parameters gave staging roles production's deploy key.
  instanceRoleNames: z.optional(
    z.never('is replaced by groups[].instanceRoleName: each role gets the parameters of its own groups only'),
  ),
});
export type ExistingGroupsConfig = z.output<typeof existingGroupsConfigSchema>;

/** Where the configuration came from, and what it says. */
export interface LoadedConfig {
  readonly source: string;
  readonly config: ExistingGroupsConfig;
  /** True when nothing was configured and the example file was used. */
  readonly isExample: boolean;
}

/**
 * Reads the configuration: the `selfdeploy` context value, else the file named by
 * `selfdeployConfigFile`, else the example file. Throws one SelfDeployPropsError naming every
 * problem: of the form, and of the meaning of every setting whose form is right.
 */
export function loadExistingGroupsConfig(tryGetContext: (key: string) => unknown): LoadedConfig {
  const inline = tryGetContext(CONFIG_CONTEXT_KEY);
  const file = tryGetContext(CONFIG_FILE_CONTEXT_KEY);
  if (inline !== undefined) {
    const source = `context ${CONFIG_CONTEXT_KEY}`;
    return {
      source,
      isExample: false,
      config: parse(typeof inline === 'string' ? jsonOf(inline, source) : inline, source),
    };
  }
  const filePath = typeof file === 'string' ? path.resolve(file) : EXAMPLE_CONFIG_FILE;
  if (!existsSync(filePath)) {
    throw new SelfDeployPropsError(`${CONFIG_FILE_CONTEXT_KEY}: ${filePath} does not exist`);
  }
  return {
    source: filePath,
    isExample: file === undefined,
    config: parse(jsonOf(readFileSync(filePath, 'utf8'), filePath), filePath),
  };
}

/** The construct's props for a configuration. */
export function toSelfDeployProps(config: ExistingGroupsConfig): SelfDeployProps {
  const optionalSeconds = (value: number | undefined) =>
    value === undefined ? undefined : Duration.seconds(value);
  return {
    groups: config.groups.map(
      ({ name, heartbeatTimeoutSeconds, bootstrapBudgetSeconds, instanceRoleName: _role, ...settings }) => ({
        ...settings,
        autoScalingGroup: name,
        heartbeatTimeout: optionalSeconds(heartbeatTimeoutSeconds),
        bootstrapBudget: optionalSeconds(bootstrapBudgetSeconds),
      }),
    ),
    executionTimeout: optionalSeconds(config.executionTimeoutSeconds),
    agentWait: optionalSeconds(config.agentWaitSeconds),
    reconcileInterval:
      config.reconcileIntervalMinutes === undefined
        ? undefined
        : Duration.minutes(config.reconcileIntervalMinutes),
    functionTimeout: optionalSeconds(config.functionTimeoutSeconds),
    maxConcurrency: config.maxConcurrency,
    reservedConcurrency: config.reservedConcurrency,
    alarmEmail: config.alarmEmail,
    failureStreak: config.failureStreak,
    runbookBaseUrl: config.runbookBaseUrl,
    logRetention: config.logRetentionDays as logs.RetentionDays | undefined,
    documentName: config.documentName,
    outputLogGroupName: config.outputLogGroupName,
    releasePath: config.releasePath,
    redeployMaxConcurrency: config.redeployMaxConcurrency,
    redeployMaxErrors: config.redeployMaxErrors,
    document: config.document,
    deployKeyEncryptionKey: config.deployKeyEncryptionKeyArn,
  };
}

/** Each instance role named by the groups, with the environments of the groups that name it. */
export function instanceRoleEnvironments(config: ExistingGroupsConfig): Map<string, string[]> {
  const roles = new Map<string, string[]>();
  for (const group of config.groups) {
    if (group.instanceRoleName === undefined) continue;
    const environment = group.environment ?? GROUP_SETTINGS.environment.default;
    const environments = roles.get(group.instanceRoleName) ?? [];
    if (!environments.includes(environment)) environments.push(environment);
    roles.set(group.instanceRoleName, environments);
  }
  return roles;
}

function jsonOf(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new SelfDeployPropsError(`${source} is not valid JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

function parse(value: unknown, source: string): ExistingGroupsConfig {
  const result = existingGroupsConfigSchema.safeParse(value);
  // Settings of the wrong form are left out, so that the meaning of all others is checked too.
  const checkable = result.success ? result.data : withoutIssues(value, result.error);
  const problems = [
    ...(result.success ? [] : [describeIssues(result.error)]),
    ...(checkable === undefined ? [] : selfDeployPropsProblems(toSelfDeployProps(checkable))),
  ];
  if (!result.success || problems.length > 0) {
    throw new SelfDeployPropsError(
      `${source} is not a valid selfdeploy configuration: ${problems.join('; ')}`,
    );
  }
  return result.data;
}

/** `value` without the settings `error` is about, when what is left is a configuration. */
function withoutIssues(value: unknown, error: z.core.$ZodError): ExistingGroupsConfig | undefined {
  const copy: unknown = structuredClone(value);
  const child = (node: unknown, key: PropertyKey): unknown =>
    typeof node === 'object' && node !== null ? Reflect.get(node, key) : undefined;
  for (const issue of error.issues) {
    // An unrecognized key is reported on its object; every other issue on the setting itself.
    const [parentPath, keys] =
      issue.code === 'unrecognized_keys'
        ? [issue.path, issue.keys]
        : [issue.path.slice(0, -1), issue.path.slice(-1)];
    const parent = parentPath.reduce(child, copy);
    if (typeof parent !== 'object' || parent === null || keys.length === 0) return undefined;
    for (const key of keys) Reflect.deleteProperty(parent, key);
  }
  const retried = existingGroupsConfigSchema.safeParse(copy);
  return retried.success ? retried.data : undefined;
}
