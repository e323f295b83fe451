import {
  type AutoScalingGroup,
  CompleteLifecycleActionCommand,
  DescribeAutoScalingGroupsCommand,
  type LifecycleState,
} from '@aws-sdk/client-auto-scaling';
import {
  GetCommandInvocationCommand,
  GetParametersByPathCommand,
  ListCommandInvocationsCommand,
  ListCommandsCommand,
  SendCommandCommand,
} from '@aws-sdk/client-ssm';
import type { Deps } from '../../functions/orchestrator/deps';
import { route } from '../../functions/orchestrator/router';
import { MetricName } from '../../functions/shared/metric-names';
import { cloudWatchMetrics } from '../../functions/shared/telemetry';
import { SelfDeploy } from '../../infra/self-deploy';
import {
  activities,
  agentsOnline,
  autoScaling,
  COMMAND_ID,
  fixture,
  harness,
  INSTANCE,
  LAUNCHED_AT,
  launchActivity,
  noActiveAction,
  ssm,
} from '../unit/support';
import { onlyResource, resourcesOf, templateOf, testStack } from './helpers';

// The alarms only fire when the orchestrator publishes exactly the metric they read: same
// namespace, same name, same dimension set (CloudWatch treats another dimension set as
// another metric). So this file captures what Powertools really prints when the orchestrator
// publishes each metric through the sink its handler uses, and compares it with what the
// synthesized alarms and dashboard read.

/** One CloudWatch metric: what identifies it, dimensions sorted by name. */
interface MetricIdentity {
  readonly namespace: string;
  readonly name: string;
  readonly dimensions: readonly { readonly name: string; readonly value: string }[];
}

const identity = (namespace: string, name: string, dimensions: [string, string][]): MetricIdentity => ({
  namespace,
  name,
  dimensions: dimensions
    .map(([dimension, value]) => ({ name: dimension, value }))
    .sort((a, b) => a.name.localeCompare(b.name)),
});

// The groups of the harness' configuration, so the published dimension values can be compared.
const stack = testStack();
new SelfDeploy(stack, 'SelfDeploy', {
  groups: [
    { autoScalingGroup: 'web', lifecycleHookName: 'selfdeploy-launch' },
    { autoScalingGroup: 'api', lifecycleHookName: 'api-launch' },
  ],
});
const template = templateOf(stack);

/** The deployed function's environment: Powertools reads it (POWERTOOLS_METRICS_DISABLED, POWERTOOLS_DEV, …). */
const functionEnvironment = (() => {
  const variables = (
    onlyResource(template, 'AWS::Lambda::Function').Environment as {
      Variables: Record<string, unknown>;
    }
  ).Variables;
  return Object.fromEntries(
    Object.entries(variables).map(([key, value]) => [key, typeof value === 'string' ? value : '[token]']),
  );
})();

/** Every EMF record the orchestrator prints while `run` runs, with the function's environment set. */
async function published(run: (deps: Deps) => Promise<unknown>): Promise<MetricIdentity[]> {
  const { deps } = harness();
  const lines: string[] = [];
  const write = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    lines.push(...String(chunk).split('\n'));
    return true;
  });
  const saved = { ...process.env };
  Object.assign(process.env, functionEnvironment);
  try {
    await run({ ...deps, metrics: cloudWatchMetrics });
  } finally {
    write.mockRestore();
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
  }
  return lines
    .filter((line) => line.startsWith('{') && line.includes('"_aws"'))
    .flatMap((line) => {
      const emf = JSON.parse(line) as Record<string, unknown> & {
        _aws: {
          CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[];
        };
      };
      return emf._aws.CloudWatchMetrics.flatMap(({ Namespace, Dimensions, Metrics }) =>
        Dimensions.flatMap((set) =>
          Metrics.map(({ Name }) =>
            identity(
              Namespace,
              Name,
              set.map((dimension) => [dimension, String(emf[dimension])]),
            ),
          ),
        ),
      );
    });
}

/** Every metric in our own namespaces (not AWS/…) that an alarm or a dashboard widget reads. */
function readByStack(): MetricIdentity[] {
  type Metric = { Namespace: string; MetricName: string; Dimensions?: { Name: string; Value: unknown }[] };
  const metricIdentity = ({ Namespace, MetricName: name, Dimensions = [] }: Metric) =>
    identity(
      Namespace,
      name,
      Dimensions.map(({ Name, Value }) => [Name, String(Value)]),
    );
  const alarms = Object.values(resourcesOf(template, 'AWS::CloudWatch::Alarm')).flatMap((alarm) => {
    const properties = alarm.Properties as Metric & { Metrics?: { MetricStat?: { Metric: Metric } }[] };
    // A metric-math alarm reads each metric of its expression.
    return properties.Metrics
      ? properties.Metrics.flatMap((query) =>
          query.MetricStat ? [metricIdentity(query.MetricStat.Metric)] : [],
        )
      : [metricIdentity(properties)];
  });
  // The body is a Fn::Join of JSON text and tokens (region, function name); the tokens sit
  // inside JSON strings, so a placeholder keeps the text parseable.
  const body = onlyResource(template, 'AWS::CloudWatch::Dashboard').DashboardBody as
    | string
    | { 'Fn::Join': [string, unknown[]] };
  const text =
    typeof body === 'string'
      ? body
      : body['Fn::Join'][1].map((part) => (typeof part === 'string' ? part : '[token]')).join('');
  const widgets = (JSON.parse(text) as { widgets: { properties: { metrics?: unknown[][] } }[] }).widgets;
  const graphed = widgets.flatMap((widget) =>
    (widget.properties.metrics ?? []).map((entry) => {
      const [namespace, name, ...rest] = entry.filter((part) => typeof part === 'string') as string[];
      const pairs: [string, string][] = [];
      for (let i = 0; i + 1 < rest.length; i += 2) pairs.push([rest[i] as string, rest[i + 1] as string]);
      return identity(namespace as string, name as string, pairs);
    }),
  );
  return [...alarms, ...graphed].filter((metric) => !metric.namespace.startsWith('AWS/'));
}

/** A group as DescribeAutoScalingGroups describes it, with these instances. */
const describedGroup = (name: string, instances: [string, LifecycleState][] = []): AutoScalingGroup => ({
  AutoScalingGroupName: name,
  MinSize: 0,
  MaxSize: 4,
  DesiredCapacity: instances.length,
  DefaultCooldown: 300,
  AvailabilityZones: ['us-west-2a'],
  HealthCheckType: 'EC2',
  CreatedTime: LAUNCHED_AT,
  Instances: instances.map(([InstanceId, LifecycleState]) => ({
    InstanceId,
    LifecycleState,
    AvailabilityZone: 'us-west-2a',
    HealthStatus: 'Healthy',
    ProtectedFromScaleIn: false,
  })),
});

/** Each metric through a real orchestrator path that publishes it. */
async function publishedByEveryPath(): Promise<MetricIdentity[]> {
  return [
    // A launch whose agent is online at once: BootstrapStarted, AgentWait.
    ...(await published((deps) => {
      ssm.on(ListCommandsCommand).resolves({ Commands: [] });
      agentsOnline(INSTANCE);
      ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'aaaaaaaa-1111-2222-3333-444444444444' } });
      return route(deps, fixture('launch'));
    })),
    // A launch of a paused group: LaunchedWithoutDeploy.
    ...(await published((deps) => {
      ssm.on(GetParametersByPathCommand).resolves({
        Parameters: [
          {
            Name: '/selfdeploy/web/paused',
            Value: JSON.stringify({ since: '2026-11-26T10:00:00.000Z', reason: 'deploys are broken' }),
          },
        ],
      });
      autoScaling.on(CompleteLifecycleActionCommand).resolves({});
      return route(deps, fixture('launch'));
    })),
    // A successful deploy completed: BootstrapSucceeded, BootstrapDuration.
    ...(await published((deps) => {
      activities(launchActivity(INSTANCE, LAUNCHED_AT));
      autoScaling.on(CompleteLifecycleActionCommand).resolves({});
      return route(deps, fixture('command-success'));
    })),
    // A failed deploy completed: BootstrapFailed.
    ...(await published((deps) => {
      activities(launchActivity(INSTANCE, LAUNCHED_AT));
      autoScaling.on(CompleteLifecycleActionCommand).resolves({});
      ssm.on(GetCommandInvocationCommand).resolves({ ResponseCode: 9, StatusDetails: 'Failed' });
      return route(deps, fixture('command-failed'));
    })),
    // A completion that found the action already ended: LifecycleActionExpired.
    ...(await published((deps) => {
      activities(launchActivity(INSTANCE, LAUNCHED_AT));
      autoScaling.on(CompleteLifecycleActionCommand).rejects(noActiveAction());
      return route(deps, fixture('command-success'));
    })),
    // A reconcile run: StuckInstances for every group, zeros included.
    ...(await published((deps) => {
      autoScaling
        .on(DescribeAutoScalingGroupsCommand)
        .resolves({ AutoScalingGroups: [describedGroup('web'), describedGroup('api')] });
      return route(deps, fixture('scheduled'));
    })),
    // A manual redeploy of one instance: ManualRedeploy.
    ...(await published((deps) => {
      autoScaling
        .on(DescribeAutoScalingGroupsCommand)
        .resolves({ AutoScalingGroups: [describedGroup('web', [[INSTANCE, 'InService']])] });
      agentsOnline(INSTANCE);
      ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'eeeeeeee-1111-2222-3333-444444444444' } });
      return route(deps, fixture('console-redeploy-group'));
    })),
    // A deploy of a SHA to a group with no InService instance, promoted at once: DeploySucceeded.
    ...(await published((deps) => {
      autoScaling
        .on(DescribeAutoScalingGroupsCommand)
        .resolves({ AutoScalingGroups: [describedGroup('web')] });
      return route(deps, { action: 'deploy', group: 'web', revision: 'a'.repeat(40) });
    })),
    // A deployment whose canary failed, moved on by its command's status event: DeployFailed.
    ...(await published((deps) => {
      const deployment = {
        id: 'd-aaaaaaaaaaaa',
        group: 'web',
        kind: 'deploy',
        requested: 'main',
        reason: 'deploy main',
        requestedAt: '2026-11-26T10:01:00.000Z',
        updatedAt: '2026-11-26T10:01:00.000Z',
        phase: 'canary',
        step: 0,
        canary: INSTANCE,
        commands: [{ commandId: COMMAND_ID, phase: 'canary' }],
        failures: [],
      };
      ssm.on(GetParametersByPathCommand).resolves({
        Parameters: [{ Name: '/selfdeploy/web/deployment', Value: JSON.stringify(deployment) }],
      });
      ssm.on(ListCommandsCommand).resolves({ Commands: [{ CommandId: COMMAND_ID, Status: 'Failed' }] });
      ssm.on(ListCommandInvocationsCommand).resolves({
        CommandInvocations: [{ CommandId: COMMAND_ID, InstanceId: INSTANCE, Status: 'Failed' }],
      });
      ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Failed', ResponseCode: 9 });
      const event = fixture('command-failed');
      Object.assign(event.detail, {
        parameters: {
          ...(event.detail.parameters as object),
          lifecycleHookName: [''],
          lifecycleActionToken: [''],
        },
      });
      return route(deps, event);
    })),
  ];
}

describe('metrics as the alarms and the dashboard read them', () => {
  let emitted: MetricIdentity[];
  beforeAll(async () => {
    emitted = await publishedByEveryPath();
  });

  it('are printed by Powertools for every MetricName, on the real paths that publish them', () => {
    expect([...new Set(emitted.map((metric) => metric.name))].sort()).toEqual(
      Object.values(MetricName).sort(),
    );
  });

  it('are, for every metric an alarm or a dashboard widget reads, exactly a metric the orchestrator publishes', () => {
    // The paths above publish for web (StuckInstances for api too); api's alarms differ only in that value.
    const read = readByStack().filter((metric) => !metric.dimensions.some(({ value }) => value === 'api'));
    expect(read.map((metric) => metric.name)).toEqual(
      expect.arrayContaining([MetricName.BootstrapFailed, MetricName.StuckInstances]),
    );
    for (const metric of read) expect(emitted).toContainEqual(metric);
  });

  it('carry one dimension set, the one the alarms read, on every metric published', () => {
    const alarmed = readByStack().find((metric) => metric.name === MetricName.BootstrapFailed);
    const keys = (metric: MetricIdentity) => JSON.stringify(metric.dimensions.map(({ name }) => name));
    expect([...new Set(emitted.map(keys))]).toEqual([keys(alarmed as MetricIdentity)]);
    expect(new Set(emitted.map((metric) => metric.namespace))).toEqual(new Set([alarmed?.namespace]));
  });
});
