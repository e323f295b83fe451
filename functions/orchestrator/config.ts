import * as z from 'zod/mini';
import { ConfigError } from '../shared/errors';
import { LIFECYCLE_RESULTS } from '../shared/lifecycle-result';
import { describeIssues, documentParameter } from '../shared/validation';

/** What happens to a launching instance that enters or leaves a warm pool. */
export const WARM_POOL_POLICIES = ['deploy-on-both', 'deploy-on-warm-pool', 'deploy-on-service'] as const;
export type WarmPoolPolicy = (typeof WARM_POOL_POLICIES)[number];

const seconds = (min: number, max: number) => z.int().check(z.gte(min), z.lte(max));

const groupSchema = z.strictObject({
  lifecycleHookName: documentParameter('lifecycleHookName').check(z.minLength(1)),
  environment: z._default(documentParameter('environment'), 'production'),
  appUser: z._default(documentParameter('appUser'), 'deploy'),
  deployPath: z._default(documentParameter('deployPath'), '/var/www/app/deploy'),
  appPath: z._default(documentParameter('appPath'), '/var/www/app'),
  healthCheckUrl: z._default(documentParameter('healthCheckUrl'), ''),
  onFailure: z._default(z.enum(LIFECYCLE_RESULTS), 'ABANDON'),
  warmPool: z._default(z.enum(WARM_POOL_POLICIES), 'deploy-on-both'),
  heartbeatTimeoutSeconds: z._default(seconds(30, 7200), 3600),
});

export const configSchema = z.strictObject({
  documentName: z.string().check(z.regex(/^[A-Za-z0-9_.-]{3,128}$/, 'must be an SSM document name')),
  executionTimeoutSeconds: z._default(seconds(30, 172800), 1800),
  agentWaitSeconds: z._default(seconds(0, 7200), 600),
  outputLogGroupName: z._default(
    z.string().check(z.regex(/^[A-Za-z0-9_./#-]{1,512}$/, 'must be a CloudWatch Logs group name')),
    '/selfdeploy/commands',
  ),
  redeployMaxConcurrency: z._default(z.string().check(z.regex(/^([1-9][0-9]*|[1-9][0-9]?%|100%)$/)), '25%'),
  redeployMaxErrors: z._default(z.string().check(z.regex(/^([0-9]+|[0-9]{1,2}%|100%)$/)), '0'),
  groups: z.record(documentParameter('autoScalingGroupName').check(z.minLength(1)), groupSchema),
});

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
