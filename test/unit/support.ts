import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Logger } from '@aws-lambda-powertools/logger';
import {
  type Activity,
  AutoScalingClient,
  type AutoScalingGroup,
  type AutoScalingInstanceDetails,
  DescribeScalingActivitiesCommand,
  type Instance,
  type LifecycleState,
} from '@aws-sdk/client-auto-scaling';
import { DescribeTagsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { SendMessageBatchCommand, SQSClient } from '@aws-sdk/client-sqs';
import {
  DescribeInstanceInformationCommand,
  GetParametersByPathCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import type { SQSEvent, SQSRecord } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import type { AgentWait } from '../../functions/orchestrator/agent-wait';
import { type ConfigInput, parseConfig } from '../../functions/orchestrator/config';
import type { Deps } from '../../functions/orchestrator/deps';
import { forgetReleaseCache } from '../../functions/orchestrator/release-store';
import type { MetricName } from '../../functions/shared/metric-names';

export const ssm = mockClient(SSMClient);
export const autoScaling = mockClient(AutoScalingClient);
export const sqs = mockClient(SQSClient);
export const ec2 = mockClient(EC2Client);

/** The queue the orchestrator consumes and puts agent waits back on. */
export const WAIT_QUEUE_URL = 'https://sqs.us-west-2.amazonaws.com/123456789012/selfdeploy-waits';

/** A sample event from test/fixtures/events, parsed fresh so tests can change it. */
export function fixture(name: string): Record<string, unknown> & { detail: Record<string, unknown> } {
  return JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'events', `${name}.json`), 'utf8'));
}

export const TOKEN = '87654321-4321-4321-4321-210987654321';
export const INSTANCE = 'i-1234567890abcdef0';
/** A second instance of the group. */
export const OTHER = 'i-0fedcba0987654321';
export const COMMAND_ID = 'e8d3c0e4-0d3c-4b8e-9d70-6b5b0d0c2a11';
/** The fake clock's start; the sample status events were requested 3 min 58 s before it. */
export const NOW = Date.parse('2026-11-26T10:05:00.000Z');

/** The `n`th of a run of instances (their ids sort in `n` order), and its launch's token. */
export const instanceId = (n: number) => `i-${n.toString(16).padStart(17, '0')}`;
export const tokenOf = (n: number) => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

/** The sample launch event for `instanceId` with its own token. */
export function launchEvent(instanceId = INSTANCE, token = TOKEN) {
  const event = fixture('launch');
  event.detail.EC2InstanceId = instanceId;
  event.detail.LifecycleActionToken = token;
  return event;
}

/** An agent wait for INSTANCE, `attempt` looks in. */
export function agentWait(fields: Partial<AgentWait> = {}): AgentWait {
  return {
    instanceId: INSTANCE,
    groupName: 'web',
    hook: 'selfdeploy-launch',
    token: TOKEN,
    place: 'AutoScalingGroup',
    waitStart: NOW - 60_000,
    attempt: 3,
    deadline: NOW + 540_000,
    lastHeartbeat: NOW - 60_000,
    ...fields,
  };
}

/** When a message reached the wait queue, as SQS stamps it, unless a test says otherwise. */
export const QUEUED_AT = NOW - 3_000;

/** The `n`th message of a batch from the wait queue, carrying `body` (JSON unless already a string). */
export function queueRecord(
  body: unknown,
  n: number,
  fields: { sentAt?: number; receiveCount?: number } = {},
): SQSRecord {
  return {
    messageId: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`,
    receiptHandle: `handle-${n}`,
    body: typeof body === 'string' ? body : JSON.stringify(body),
    attributes: {
      ApproximateReceiveCount: String(fields.receiveCount ?? 1),
      SentTimestamp: String(fields.sentAt ?? QUEUED_AT),
      SenderId: 'AIDAEXAMPLE',
      ApproximateFirstReceiveTimestamp: String(NOW),
    },
    messageAttributes: {},
    md5OfBody: '',
    eventSource: 'aws:sqs',
    eventSourceARN: 'arn:aws:sqs:us-west-2:123456789012:selfdeploy-waits',
    awsRegion: 'us-west-2',
  };
}

/** A batch from the wait queue carrying `bodies`, in order. */
export const queueBatch = (...bodies: unknown[]): SQSEvent => ({
  Records: bodies.map((body, n) => queueRecord(body, n + 1)),
});

export const baseConfig: ConfigInput = {
  documentName: 'SelfDeploy',
  waitQueueUrl: WAIT_QUEUE_URL,
  groups: {
    web: { lifecycleHookName: 'selfdeploy-launch' },
    api: {
      lifecycleHookName: 'api-launch',
      environment: 'staging',
      appUser: 'deploy',
      deployPath: '/srv/api/deploy',
      appPath: '/srv/api',
      onFailure: 'CONTINUE',
      heartbeatTimeoutSeconds: 60,
    },
  },
};

export interface Harness {
  deps: Deps;
  /** Every metric value recorded, in order. */
  metrics: { name: MetricName; group: string; value: number; unit: string }[];
  /** Milliseconds slept, in order. */
  sleeps: number[];
  logs: { error: jest.SpyInstance; warn: jest.SpyInstance; info: jest.SpyInstance };
}

/** Core dependencies with mocked AWS clients, a fake clock that advances when it sleeps, and captured telemetry. */
export function harness(options: { config?: ConfigInput; remainingMs?: number } = {}): Harness {
  ssm.reset();
  autoScaling.reset();
  sqs.reset();
  ec2.reset();
  // The queue takes every wait put back on it unless a test says otherwise.
  sqs.on(SendMessageBatchCommand).resolves({ Successful: [], Failed: [] });
  // A group with no scaling activity on record unless a test says otherwise.
  autoScaling.on(DescribeScalingActivitiesCommand).resolves({ Activities: [] });
  // No group has a release, pause or deployment, and no instance a selfdeploy tag, unless a test says otherwise.
  ssm.on(GetParametersByPathCommand).resolves({ Parameters: [] });
  ec2.on(DescribeTagsCommand).resolves({ Tags: [] });
  // Each test reads the records it sets up: none is served from an earlier test's cached read.
  forgetReleaseCache();
  let now = NOW;
  const sleeps: number[] = [];
  const metrics: Harness['metrics'] = [];
  const logger = new Logger({ serviceName: 'selfdeploy', logLevel: 'SILENT' });
  const deadline = NOW + (options.remainingMs ?? 900_000);
  const deps: Deps = {
    config: parseConfig(JSON.stringify(options.config ?? baseConfig)),
    clients: {
      ssm: new SSMClient({ region: 'us-west-2' }),
      autoScaling: new AutoScalingClient({ region: 'us-west-2' }),
      sqs: new SQSClient({ region: 'us-west-2' }),
      ec2: new EC2Client({ region: 'us-west-2' }),
    },
    logger,
    metrics: {
      record: (name, group, value = 1, unit = 'Count') => metrics.push({ name, group, value, unit }),
    },
    clock: {
      now: () => now,
      sleep: async (ms) => {
        sleeps.push(ms);
        now += ms;
      },
      random: () => 0.5,
    },
    remainingMs: () => deadline - now,
  };
  return {
    deps,
    metrics,
    sleeps,
    logs: {
      error: jest.spyOn(logger, 'error'),
      warn: jest.spyOn(logger, 'warn'),
      info: jest.spyOn(logger, 'info'),
    },
  };
}

/** An error as the SDK raises it for an AWS error code. */
export function awsError(name: string, message: string): Error {
  return Object.assign(new Error(message), { name, $fault: 'client', $metadata: { httpStatusCode: 400 } });
}

export const noActiveAction = () =>
  awsError('ValidationError', `No active Lifecycle Action found with token ${TOKEN}`);

/** Total AWS calls made through the mocked clients. */
export const awsCallCount = () => ssm.calls().length + autoScaling.calls().length + sqs.calls().length;

/** When INSTANCE's current wait began: its launch activity, two minutes before the sample commands were requested. */
export const LAUNCHED_AT = new Date('2026-11-26T09:59:00.000Z');

/** A scaling activity launching `instanceId` (into service unless `how` says the warm pool). */
export function launchActivity(
  instanceId: string,
  start: Date,
  how: 'new' | 'into warm pool' | 'from warm pool' = 'new',
  StatusCode: Activity['StatusCode'] = 'Successful',
): Activity {
  const description = how === 'new' ? 'Launching a new EC2 instance' : `Launching a new EC2 instance ${how}`;
  return {
    ActivityId: `activity-${instanceId}-${start.getTime()}`,
    AutoScalingGroupName: 'web',
    Description: `${description}: ${instanceId}`,
    Cause:
      'At 2026-11-26T09:58:59Z an instance was started in response to a difference between desired and actual capacity.',
    StartTime: start,
    StatusCode,
  };
}

/** The group's scaling activities, newest first, on one page. */
export function activities(...list: Activity[]): void {
  autoScaling.on(DescribeScalingActivitiesCommand).resolves({ Activities: list });
}

/** An instance as DescribeAutoScalingGroups and DescribeWarmPool describe it. */
export function groupInstance(InstanceId: string, LifecycleState: LifecycleState): Instance {
  return {
    InstanceId,
    LifecycleState,
    AvailabilityZone: 'us-west-2a',
    HealthStatus: 'Healthy',
    ProtectedFromScaleIn: false,
  };
}

/** A group as DescribeAutoScalingGroups describes it: its instances, and any field a test sets. */
export function describedGroup(
  AutoScalingGroupName: string,
  Instances: Instance[],
  fields: Partial<AutoScalingGroup> = {},
): AutoScalingGroup {
  return {
    AutoScalingGroupName,
    MinSize: 0,
    MaxSize: 200,
    DesiredCapacity: Instances.length,
    DefaultCooldown: 300,
    AvailabilityZones: ['us-west-2a'],
    HealthCheckType: 'EC2',
    CreatedTime: new Date('2026-11-01T00:00:00.000Z'),
    Instances,
    ...fields,
  };
}

/** An instance as DescribeAutoScalingInstances describes it. */
export function describedInstance(
  InstanceId: string,
  AutoScalingGroupName: string,
  LifecycleState: LifecycleState,
): AutoScalingInstanceDetails {
  return {
    InstanceId,
    AutoScalingGroupName,
    LifecycleState,
    AvailabilityZone: 'us-west-2a',
    HealthStatus: 'HEALTHY',
    ProtectedFromScaleIn: false,
  };
}

/**
 * DescribeInstanceInformation answers each instance its filter names with `statusOf(id)` as
 * the agent's PingStatus, leaving out those for which it is undefined (never registered).
 */
export function agentStatuses(statusOf: (instanceId: string) => string | undefined): void {
  ssm.on(DescribeInstanceInformationCommand).callsFake((input) => ({
    InstanceInformationList: (input.Filters?.[0]?.Values ?? []).flatMap((InstanceId: string) => {
      const PingStatus = statusOf(InstanceId);
      return PingStatus ? [{ InstanceId, PingStatus }] : [];
    }),
  }));
}

/** The agents of exactly these instances are online; no other has registered. */
export const agentsOnline = (...instanceIds: string[]) =>
  agentStatuses((id) => (instanceIds.includes(id) ? 'Online' : undefined));
