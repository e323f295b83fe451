/**
 * The EventBridge event patterns that route events to the orchestrator. The CDK rules and
 * the local control plane's event bus both use these, so what is deployed is what is tested.
 */
export const LAUNCH_DETAIL_TYPE = 'EC2 Instance-launch Lifecycle Action';
export const TERMINATE_DETAIL_TYPE = 'EC2 Instance-terminate Lifecycle Action';
export const COMMAND_STATUS_DETAIL_TYPE = 'EC2 Command Status-change Notification';
export const INVOCATION_STATUS_DETAIL_TYPE = 'EC2 Command Invocation Status-change Notification';
export const SCHEDULED_DETAIL_TYPE = 'Scheduled Event';

/** Statuses after which a command will not change again. */
export const TERMINAL_COMMAND_STATUSES = ['Success', 'Failed', 'TimedOut', 'Cancelled'] as const;

const terminal: ReadonlySet<string> = new Set(TERMINAL_COMMAND_STATUSES);

/** Whether a command (or invocation) status is final. */
export function isTerminalStatus(status: string | undefined): boolean {
  return terminal.has(status ?? '');
}

/** An EventBridge pattern: every key maps to a list of accepted values or a nested pattern. */
export type EventPattern = { readonly [key: string]: readonly string[] | EventPattern };

/** Launch lifecycle actions of exactly the managed groups. */
export function launchLifecyclePattern(groupNames: readonly string[]): EventPattern {
  return {
    source: ['aws.autoscaling'],
    'detail-type': [LAUNCH_DETAIL_TYPE],
    detail: { AutoScalingGroupName: [...groupNames] },
  };
}

/** Command-level terminal status changes of exactly the SelfDeploy document. */
export function commandStatusPattern(documentName: string): EventPattern {
  return {
    source: ['aws.ssm'],
    'detail-type': [COMMAND_STATUS_DETAIL_TYPE],
    detail: { 'document-name': [documentName], status: [...TERMINAL_COMMAND_STATUSES] },
  };
}
