/**
 * The SelfDeploy document's parameter contract: names, allowed patterns and defaults.
 * Defined once; the orchestrator, the document builder, the CDK construct, the local
 * control plane and the instance script's own checks all use these exact patterns.
 *
 * Patterns are POSIX-ERE compatible (no look-around) so the instance script can apply the
 * very same strings with bash's `[[ =~ ]]`, and they mean the same in JavaScript and in
 * SSM's own validation.
 */
export const DOCUMENT_PARAMETERS = {
  environment: {
    pattern: '^[a-z][a-z0-9_-]{0,31}$',
    default: 'production',
    description: 'Deploy environment; the Capistrano stage is local_<environment>.',
  },
  revision: {
    pattern: '^$|^[A-Za-z0-9_][A-Za-z0-9._/-]{0,127}$',
    default: '',
    description:
      'Commit SHA, tag or branch to deploy; empty = the pinned revision for the environment, else the branch head.',
  },
  appUser: {
    pattern: '^[a-z_][a-z0-9_-]{0,31}$',
    default: 'deploy',
    description:
      'Dedicated unprivileged user (no sudo rights) that owns the application and runs the deploy.',
  },
  deployPath: {
    pattern: '^(/[A-Za-z0-9_-][A-Za-z0-9._-]*)+$',
    default: '/var/www/app/deploy',
    description: "Absolute path of the deploy checkout (the application's repository with its Capfile).",
  },
  appPath: {
    pattern: '^(/[A-Za-z0-9_-][A-Za-z0-9._-]*)+$',
    default: '/var/www/app',
    description: 'Absolute path Capistrano deploys to (deploy_to: releases/, current, shared/).',
  },
  migrate: {
    pattern: '^(true|false)$',
    default: 'false',
    description:
      "Whether this instance runs the release's database migrations (the stage gives it the db role). Launches never set it.",
  },
  healthCheckUrl: {
    pattern: '^$|^https?://(127\\.0\\.0\\.1|localhost|\\[::1\\])(:[0-9]{1,5})?(/[A-Za-z0-9._~/%?=&+-]*)?$',
    default: '',
    description:
      'Loopback URL the application must answer with a 2xx after the deploy (curl as the application user, with retries); empty = no health check.',
  },
  executionTimeout: {
    pattern: '^[1-9][0-9]{1,5}$',
    default: '1800',
    description:
      "Seconds the deploy may run before SSM stops it (the step's timeoutSeconds, not passed to the script).",
  },
  autoScalingGroupName: {
    pattern: '^$|^[A-Za-z0-9._:/@+=-]{1,255}$',
    default: '',
    description: 'Lifecycle context: the Auto Scaling group. Empty for manual redeploys.',
  },
  lifecycleHookName: {
    pattern: '^$|^[A-Za-z0-9_/-]{1,255}$',
    default: '',
    description: 'Lifecycle context: the launch lifecycle hook. Empty for manual redeploys.',
  },
  instanceId: {
    pattern: '^$|^i-[0-9a-f]{8,17}$',
    default: '',
    description:
      'Lifecycle context: the instance the command was sent to; a command that ran elsewhere completes nothing. Empty for manual redeploys.',
  },
  lifecycleActionToken: {
    pattern: '^$|^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$',
    default: '',
    description: 'Lifecycle context: the lifecycle action token. Empty for manual redeploys and reconciles.',
  },
} as const satisfies Record<string, { pattern: string; default: string; description: string }>;

export type DocumentParameterName = keyof typeof DOCUMENT_PARAMETERS;
export type DocumentParameters = Record<DocumentParameterName, string>;

/** Parameter names in a stable order. */
export const DOCUMENT_PARAMETER_NAMES = Object.keys(DOCUMENT_PARAMETERS) as DocumentParameterName[];

const compiled = Object.fromEntries(
  DOCUMENT_PARAMETER_NAMES.map((name) => [name, new RegExp(DOCUMENT_PARAMETERS[name].pattern)]),
) as Record<DocumentParameterName, RegExp>;

/** Why `value` is not acceptable for parameter `name`, or undefined when it is. */
export function parameterProblem(name: DocumentParameterName, value: string): string | undefined {
  return compiled[name].test(value)
    ? undefined
    : `${name} ${JSON.stringify(value)} does not match ${DOCUMENT_PARAMETERS[name].pattern}`;
}

/** SendCommand's `Parameters` shape (every value a one-element list). */
export function toCommandParameters(parameters: DocumentParameters): Record<string, string[]> {
  return Object.fromEntries(DOCUMENT_PARAMETER_NAMES.map((name) => [name, [parameters[name]]]));
}

/** Reads a command's parameters back (from ListCommands or a command-level status event). */
export function fromCommandParameters(
  raw: Record<string, string[] | undefined> | undefined,
): DocumentParameters {
  return Object.fromEntries(
    DOCUMENT_PARAMETER_NAMES.map((name) => [name, raw?.[name]?.[0] ?? DOCUMENT_PARAMETERS[name].default]),
  ) as DocumentParameters;
}
