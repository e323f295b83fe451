/**
 * Metric names, namespace and dimensions the orchestrator publishes (CloudWatch EMF).
 * The CDK alarms and dashboard import these; test/infra/metrics.test.ts compares what
 * Powertools really prints with what the synthesized alarms and dashboard read.
 */
export const METRIC_NAMESPACE = 'SelfDeploy';
/** Powertools adds `service` to every metric's dimensions; alarms must name it too. */
export const SERVICE_NAME = 'selfdeploy';
/** The dimension naming the Auto Scaling group a value belongs to. */
export const GROUP_DIMENSION = 'AutoScalingGroupName';

/** Every metric the orchestrator publishes. */
export const MetricName = {
  BootstrapStarted: 'BootstrapStarted',
  BootstrapSucceeded: 'BootstrapSucceeded',
  BootstrapFailed: 'BootstrapFailed',
  /** Seconds from the command's request to its terminal status. */
  BootstrapDuration: 'BootstrapDuration',
  /** Seconds spent waiting for the SSM agent to register before a command could be sent. */
  AgentWait: 'AgentWait',
  LifecycleActionExpired: 'LifecycleActionExpired',
  StuckInstances: 'StuckInstances',
  ManualRedeploy: 'ManualRedeploy',
  /** Operator deployments (deploy or rollback) of a group that ended promoted. */
  DeploySucceeded: 'DeploySucceeded',
  /** Operator deployments (deploy or rollback) of a group that ended failed, the release unchanged. */
  DeployFailed: 'DeployFailed',
  /** Launches completed with CONTINUE without a deploy because the group was paused. */
  LaunchedWithoutDeploy: 'LaunchedWithoutDeploy',
} as const;
export type MetricName = (typeof MetricName)[keyof typeof MetricName];

/** The dimensions every per-group metric carries. */
export function groupDimensions(groupName: string): Record<string, string> {
  return { service: SERVICE_NAME, [GROUP_DIMENSION]: groupName };
}
