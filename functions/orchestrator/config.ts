import * as z from 'zod/mini';
import { ConfigError, InvalidInputError } from '../shared/errors';
import {
  DEPLOY_MODES,
  defaultHeartbeatSeconds,
  FOLLOW_MODES,
  GROUP_SETTINGS,
  type GroupConfigField,
  TOP_LEVEL_SETTINGS,
  WARM_POOL_POLICIES,
} from '../shared/group-settings';
import { LIFECYCLE_RESULTS } from '../shared/lifecycle-result';
import { describeIssues, documentParameter } from '../shared/validation';

export { WARM_POOL_POLICIES, type WarmPoolPolicy } from '../shared/group-settings';

const seconds = ([min, max]: readonly [number, number]) => z.int().check(z.gte(min), z.lte(max));

// Forms here, defaults from the one table of settings; the keys must be exactly its group settings.
const groupSchema = z.strictObject({
  lifecycleHookName: documentParameter('lifecycleHookName').check(z.minLength(1)),
  environment: z._default(documentParameter('environment'), GROUP_SETTINGS.environment.default),
  appUser: z._default(documentParameter('appUser'), GROUP_SETTINGS.appUser.default),
  deployPath: z._default(documentParameter('deployPath'), GROUP_SETTINGS.deployPath.default),
  appPath: z._default(documentParameter('appPath'), GROUP_SETTINGS.appPath.default),
  healthCheckUrl: z._default(documentParameter('healthCheckUrl'), GROUP_SETTINGS.healthCheckUrl.default),
  onFailure: z._default(z.enum(LIFECYCLE_RESULTS), GROUP_SETTINGS.onFailure.default),
  warmPool: z._default(z.enum(WARM_POOL_POLICIES), GROUP_SETTINGS.warmPool.default),
  follow: z._default(z.enum(FOLLOW_MODES), GROUP_SETTINGS.follow.default),
  deployWith: z._default(z.enum(DEPLOY_MODES), GROUP_SETTINGS.deployWith.default),
  // Filled in below from the top-level timings when omitted: it depends on them.
  heartbeatTimeoutSeconds: z.optional(seconds(GROUP_SETTINGS.heartbeatTimeout.range)),
} satisfies Record<GroupConfigField, z.ZodMiniType>);

const writtenSchema = z.strictObject({
  documentName: z.string().check(z.regex(/^[A-Za-z0-9_.-]{3,128}$/, 'must be an SSM document name')),
  // Written by the construct: the queue its launch and status rules feed and agent waits go back to.
  waitQueueUrl: z.url({
    protocol: /^https?$/,
    error: 'must be the URL of the SQS queue the orchestrator consumes',
  }),
  executionTimeoutSeconds: z._default(
    seconds(TOP_LEVEL_SETTINGS.executionTimeout.range),
    TOP_LEVEL_SETTINGS.executionTimeout.default,
  ),
  agentWaitSeconds: z._default(
    seconds(TOP_LEVEL_SETTINGS.agentWait.range),
    TOP_LEVEL_SETTINGS.agentWait.default,
  ),
  outputLogGroupName: z._default(
    z.string().check(z.regex(/^[A-Za-z0-9_./#-]{1,512}$/, 'must be a CloudWatch Logs group name')),
    TOP_LEVEL_SETTINGS.outputLogGroupName.default,
  ),
  releasePath: z._default(
    z.string().check(z.regex(/^(\/[A-Za-z0-9_.-]+)+$/, 'must be a Parameter Store path such as /selfdeploy')),
    TOP_LEVEL_SETTINGS.releasePath.default,
  ),
  redeployMaxConcurrency: z._default(
    z.string().check(z.regex(/^([1-9][0-9]*|[1-9][0-9]?%|100%)$/)),
    TOP_LEVEL_SETTINGS.redeployMaxConcurrency.default,
  ),
  redeployMaxErrors: z._default(
    z.string().check(z.regex(/^([0-9]+|[0-9]{1,2}%|100%)$/)),
    TOP_LEVEL_SETTINGS.redeployMaxErrors.default,
  ),
  groups: z.record(documentParameter('autoScalingGroupName').check(z.minLength(1)), groupSchema),
});

/**
 * SELFDEPLOY_CONFIG's schema. A group without heartbeatTimeoutSeconds gets the timeout the
 * construct gives its hook, so the agent wait heartbeats on the hook's own cadence.
 */
export const configSchema = z.pipe(
  writtenSchema,
  z.transform((config) => ({
    ...config,
    groups: Object.fromEntries(
      Object.entries(config.groups).map(([name, group]) => [
        name,
        {
          ...group,
          heartbeatTimeoutSeconds:
            group.heartbeatTimeoutSeconds ??
            defaultHeartbeatSeconds(config.agentWaitSeconds, config.executionTimeoutSeconds),
        },
      ]),
    ),
  })),
);

/** SELFDEPLOY_CONFIG as written (omitted fields take their defaults). */
export type ConfigInput = z.input<typeof configSchema>;
/** SELFDEPLOY_CONFIG after validation, every default filled in. */
export type Config = z.output<typeof configSchema>;
export type GroupConfig = Config['groups'][string];

/** Parses and validates SELFDEPLOY_CONFIG's JSON; throws one ConfigError naming every problem. */
export function parseConfig(raw: string | undefined): Config {
  if (raw === undefined || raw.trim() === '') {
    throw new ConfigError('SELFDEPLOY_CONFIG is not set: it must hold the JSON configuration');
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (error) {
    throw new ConfigError(`SELFDEPLOY_CONFIG is not valid JSON: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const result = configSchema.safeParse(json);
  if (!result.success) {
    throw new ConfigError(`SELFDEPLOY_CONFIG is invalid: ${describeIssues(result.error)}`);
  }
  if (Object.keys(result.data.groups).length === 0) {
    throw new ConfigError('SELFDEPLOY_CONFIG is invalid: groups: name at least one Auto Scaling group');
  }
  return result.data;
}

/**
 * The settings of a managed group, or undefined when `name` is not one. Own keys only: a name
 * such as `constructor` or `__proto__` must never reach an inherited property of the object.
 */
export function managedGroup(config: Config, name: string): GroupConfig | undefined {
  return Object.hasOwn(config.groups, name) ? config.groups[name] : undefined;
}

/** The settings of a group an action names; one clear line, before any AWS call, when it is not managed. */
export function requireManagedGroup(config: Config, name: string): GroupConfig {
  const group = managedGroup(config, name);
  if (!group) {
    throw new InvalidInputError(
      `group ${JSON.stringify(name)} is not managed by selfdeploy (managed: ${Object.keys(config.groups).join(', ')})`,
    );
  }
  return group;
}
