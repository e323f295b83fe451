import {
  type Command,
  GetCommandInvocationCommand,
  type GetCommandInvocationCommandOutput,
  ListCommandInvocationsCommand,
  paginateDescribeInstanceInformation,
  paginateListCommands,
  SendCommandCommand,
} from '@aws-sdk/client-ssm';
import { type DocumentParameters, toCommandParameters } from '../shared/document-contract';
import { parseResultLine } from '../shared/result-line';
import type { GroupConfig } from './config';
import type { Deps } from './deps';
import type { LifecycleAction } from './lifecycle';
import { chunk } from './utilities';

/** SendCommand's own limit on instances per command. */
export const MAX_INSTANCES_PER_COMMAND = 50;
/** How long SSM may take to deliver a command to a registered agent before giving up. */
const DELIVERY_TIMEOUT_SECONDS = 600;
/** Characters of each output stream shown in a failure log line. */
const TAIL_CHARS = 2_000;

/**
 * SendCommand's InvalidInstanceId: the SSM agent is not registered (yet) — or, when it is
 * online, the role may not send to this instance.
 */
export function isAgentNotReady(error: unknown): boolean {
  return error instanceof Error && error.name === 'InvalidInstanceId';
}

/** AWS refused for rate, even after the SDK's own retries. */
export function isThrottled(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const retryable = (error as { $retryable?: { throttling?: boolean } }).$retryable;
  return retryable?.throttling === true || ['Throttling', 'ThrottlingException'].includes(error.name);
}

/** Sends the SelfDeploy document; returns the command id. */
export async function sendSelfDeploy(
  deps: Deps,
  instanceIds: readonly string[],
  parameters: Omit<DocumentParameters, 'executionTimeout'>,
  comment: string,
  rateControl?: { maxConcurrency: string; maxErrors: string },
): Promise<string> {
  const { config } = deps;
  const output = await deps.clients.ssm.send(
    new SendCommandCommand({
      DocumentName: config.documentName,
      InstanceIds: [...instanceIds],
      Parameters: toCommandParameters({
        ...parameters,
        executionTimeout: String(config.executionTimeoutSeconds),
      }),
      Comment: comment,
      TimeoutSeconds: DELIVERY_TIMEOUT_SECONDS,
      CloudWatchOutputConfig: {
        CloudWatchOutputEnabled: true,
        CloudWatchLogGroupName: config.outputLogGroupName,
      },
      ...(rateControl && { MaxConcurrency: rateControl.maxConcurrency, MaxErrors: rateControl.maxErrors }),
    }),
  );
  const commandId = output.Command?.CommandId;
  if (!commandId) throw new Error('SendCommand answered without a command id');
  return commandId;
}

/** A command as ListCommands describes it, narrowed to the id SSM always gives. */
export type ListedCommand = Command & { readonly CommandId: string };

/** SelfDeploy commands sent to one instance, newest first. */
export async function selfDeployCommands(deps: Deps, instanceId: string): Promise<ListedCommand[]> {
  const commands: ListedCommand[] = [];
  const pages = paginateListCommands(
    { client: deps.clients.ssm },
    { InstanceId: instanceId, Filters: [{ key: 'DocumentName', value: deps.config.documentName }] },
  );
  for await (const page of pages) {
    commands.push(
      ...(page.Commands ?? []).filter((command): command is ListedCommand => !!command.CommandId),
    );
  }
  return commands.sort(
    (a, b) => (b.RequestedDateTime?.getTime() ?? 0) - (a.RequestedDateTime?.getTime() ?? 0),
  );
}

/** The instances a command ran on. */
export async function commandInstanceIds(deps: Deps, commandId: string): Promise<string[]> {
  const output = await deps.clients.ssm.send(new ListCommandInvocationsCommand({ CommandId: commandId }));
  return (output.CommandInvocations ?? []).flatMap((invocation) => invocation.InstanceId ?? []);
}

/** One instance's run of a command: its exit code and output. */
export function readInvocation(deps: Deps, commandId: string, instanceId: string) {
  return deps.clients.ssm.send(
    new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }),
  );
}

/** What an operator needs from a failed run: exit code, status detail and the ends of both streams. */
export function failureFields(
  deps: Deps,
  commandId: string,
  instanceId: string,
  invocation: GetCommandInvocationCommandOutput,
) {
  const stdout = invocation.StandardOutputContent ?? '';
  const deployResult = parseResultLine(stdout);
  return {
    responseCode: invocation.ResponseCode,
    ...(deployResult && { deployResult }),
    statusDetails: invocation.StatusDetails,
    stdoutTail: stdout.slice(-TAIL_CHARS),
    stderrTail: (invocation.StandardErrorContent ?? '').slice(-TAIL_CHARS),
    fullOutput: `CloudWatch Logs group ${deps.config.outputLogGroupName}, streams ${commandId}/${instanceId}/*`,
  };
}

/** failureFields when the run can be read; where it cannot, why (the output is for the log only). */
export async function failureOutput(deps: Deps, commandId: string, instanceId: string) {
  try {
    return failureFields(deps, commandId, instanceId, await readInvocation(deps, commandId, instanceId));
  } catch (error) {
    return { outputUnavailable: (error as Error).message };
  }
}

/**
 * A group's document parameters: its settings, the revision (an exact SHA, a name, or empty for
 * the pinned revision or branch head), whether to migrate and, for a lifecycle deploy, the action
 * it completes; an operator's deploy has none.
 */
export function deployParameters(
  group: GroupConfig,
  options: {
    readonly revision?: string;
    readonly environment?: string;
    readonly action?: LifecycleAction;
    /** Only a deployment's canary migrates: a burst of new instances must not. */
    readonly migrate?: boolean;
  },
): Omit<DocumentParameters, 'executionTimeout'> {
  const { action } = options;
  return {
    environment: options.environment ?? group.environment,
    revision: options.revision ?? '',
    appUser: group.appUser,
    deployPath: group.deployPath,
    appPath: group.appPath,
    migrate: options.migrate ? 'true' : 'false',
    healthCheckUrl: group.healthCheckUrl,
    autoScalingGroupName: action?.group ?? '',
    lifecycleHookName: action?.hook ?? '',
    instanceId: action?.instanceId ?? '',
    lifecycleActionToken: action?.token ?? '',
  };
}

/** DescribeInstanceInformation's InstanceIds filter takes at most this many. */
const IDS_PER_FILTER = 50;

/** PingStatus of each instance's SSM agent; absent = never registered. */
export async function agentStatuses(
  deps: Deps,
  instanceIds: readonly string[],
): Promise<Map<string, string>> {
  const status = new Map<string, string>();
  for (const ids of chunk(instanceIds, IDS_PER_FILTER)) {
    const pages = paginateDescribeInstanceInformation(
      { client: deps.clients.ssm },
      { Filters: [{ Key: 'InstanceIds', Values: ids }] },
    );
    for await (const page of pages) {
      for (const info of page.InstanceInformationList ?? []) {
        if (info.InstanceId) status.set(info.InstanceId, info.PingStatus ?? 'unknown');
      }
    }
  }
  return status;
}
