/**
 * Exit codes of self-deploy.sh and of the SelfDeploy document's step, defined once. The
 * script's constants, its --help, the docs and the orchestrator's completion read these.
 * Never 194: it makes the SSM agent reboot the instance and run the script again.
 */
export const SELF_DEPLOY_EXIT_CODES = {
  success: 0,
  unexpected: 1,
  invalidInput: 2,
  missingPrerequisite: 3,
  lockTimeout: 4,
  localhostTrust: 5,
  parameterStore: 6,
  revision: 7,
  gemInstall: 8,
  deployCommand: 9,
  verification: 10,
  bootNotFinished: 11,
  healthCheck: 12,
  sameWaitInProgress: 13,
  noResult: 14,
} as const;

export type SelfDeployExitCode = (typeof SELF_DEPLOY_EXIT_CODES)[keyof typeof SELF_DEPLOY_EXIT_CODES];

/**
 * Codes that carry no verdict on the instance: another run for the same lifecycle wait is in
 * progress, and that run's own result decides. Completion ignores a command that ends so.
 */
export const NO_VERDICT_EXIT_CODES: ReadonlySet<number> = new Set([
  SELF_DEPLOY_EXIT_CODES.sameWaitInProgress,
]);
