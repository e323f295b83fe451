import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Duration, aws_logs as logs } from 'aws-cdk-lib';
import * as z from 'zod/mini';
import { WARM_POOL_POLICIES } from '../functions/orchestrator/config';
import { describeIssues } from '../functions/shared/validation';
import { PROJECT_ROOT } from './bundling';
import type { SelfDeployProps } from './self-deploy';

/** Context key holding the existing-groups configuration itself (an object, or its JSON text). */
export const CONFIG_CONTEXT_KEY = 'selfdeploy';
/** Context key naming a JSON configuration file (relative to the working directory). */
export const CONFIG_FILE_CONTEXT_KEY = 'selfdeployConfigFile';
/** Read when neither context key is set, so that a fresh clone synthesizes. */
export const EXAMPLE_CONFIG_FILE = path.join(PROJECT_ROOT, 'infra', 'existing-groups.example.json');

const seconds = z.int().check(z.positive());

const groupSchema = z.strictObject({
  name: z.string().check(z.minLength(1)),
  environment: z.optional(z.string()),
  lifecycleHookName: z.optional(z.string()),
  heartbeatTimeoutSeconds: z.optional(seconds),
  onFailure: z.optional(z.enum(['ABANDON', 'CONTINUE'])),
  warmPool: z.optional(z.enum(WARM_POOL_POLICIES)),
  appUser: z.optional(z.string()),
  deployPath: z.optional(z.string()),
  appPath: z.optional(z.string()),
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
});

const retentionDays = new Set<number>(Object.values(logs.RetentionDays).filter((v) => typeof v === 'number'));

/** The existing-groups stack's configuration: SelfDeployProps in JSON form, plus instance roles to grant. */
export const existingGroupsConfigSchema = z.strictObject({
  groups: z.array(groupSchema).check(z.minLength(1)),
  executionTimeoutSeconds: z.optional(seconds),
  agentWaitSeconds: z.optional(z.int().check(z.nonnegative())),
  reconcileIntervalMinutes: z.optional(seconds),
  functionTimeoutSeconds: z.optional(seconds),
  alarmEmail: z.optional(z.string()),
  logRetentionDays: z.optional(
    z
      .int()
      .check(
        z.refine((days) => retentionDays.has(days), 'must be a retention CloudWatch Logs offers, e.g. 30'),
      ),
  ),
  documentName: z.optional(z.string()),
  outputLogGroupName: z.optional(z.string()),
  redeployMaxConcurrency: z.optional(z.string()),
  redeployMaxErrors: z.optional(z.string()),
  document: z.optional(documentSchema),
  /** Roles of the groups' instances, granted the output log group and the document's parameters. */
  instanceRoleNames: z.optional(z.array(z.string().check(z.minLength(1)))),
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
 * `selfdeployConfigFile`, else the example file. Throws naming every problem.
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
    throw new Error(`${CONFIG_FILE_CONTEXT_KEY}: ${filePath} does not exist`);
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
    groups: config.groups.map(({ name, heartbeatTimeoutSeconds, ...settings }) => ({
      ...settings,
      autoScalingGroup: name,
      heartbeatTimeout: optionalSeconds(heartbeatTimeoutSeconds),
    })),
    executionTimeout: optionalSeconds(config.executionTimeoutSeconds),
    agentWait: optionalSeconds(config.agentWaitSeconds),
    reconcileInterval:
      config.reconcileIntervalMinutes === undefined
        ? undefined
        : Duration.minutes(config.reconcileIntervalMinutes),
    functionTimeout: optionalSeconds(config.functionTimeoutSeconds),
    alarmEmail: config.alarmEmail,
    logRetention: config.logRetentionDays as logs.RetentionDays | undefined,
    documentName: config.documentName,
    outputLogGroupName: config.outputLogGroupName,
    redeployMaxConcurrency: config.redeployMaxConcurrency,
    redeployMaxErrors: config.redeployMaxErrors,
    document: config.document,
  };
}

function jsonOf(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`${source} is not valid JSON: ${(error as Error).message}`);
  }
}

function parse(value: unknown, source: string): ExistingGroupsConfig {
  const result = existingGroupsConfigSchema.safeParse(value);
  if (!result.success) {
    throw new Error(`${source} is not a valid selfdeploy configuration: ${describeIssues(result.error)}`);
  }
  return result.data;
}
