import {
  aws_cloudwatch_actions as actions,
  aws_cloudwatch as cloudwatch,
  Duration,
  type aws_lambda as lambda,
  type aws_sns as sns,
  type aws_sqs as sqs,
} from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { groupDimensions, METRIC_NAMESPACE, MetricName } from '../functions/shared/metric-names';
import { type AlarmName, alarmDescription } from './alarm-runbook';

/** A managed group as the monitoring sees it. */
export interface MonitoredGroup {
  /** Construct id fragment, stable across deploys. */
  readonly id: string;
  /** The group's name (a token for groups built in the same app). */
  readonly name: string;
  /** The p90 bootstrap duration above which its bootstrap-time alarm fires. */
  readonly bootstrapBudget: Duration;
}

/** Inputs of {@link SelfDeployMonitoring}. */
export interface SelfDeployMonitoringProps {
  /** The managed groups. */
  readonly groups: readonly MonitoredGroup[];
  /** The orchestrator function. */
  readonly function: lambda.IFunction;
  /** Where undeliverable events end up. */
  readonly deadLetterQueue: sqs.IQueue;
  /** The queue the function consumes, and how long a batch hides its messages. */
  readonly eventQueues: readonly sqs.IQueue[];
  readonly visibilityTimeout: Duration;
  /** Where alarms (and their recoveries) are sent. */
  readonly topic: sns.ITopic;
  /** How often the reconciler runs, which is how often StuckInstances is published. */
  readonly reconcileInterval: Duration;
  /** How long a launch itself waits for a new instance's SSM agent before the reconciler takes over. */
  readonly agentWait: Duration;
  /** Failed bootstraps within an hour, none succeeding, that fire a group's failure-streak alarm. */
  readonly failureStreak: number;
  /** Where docs/operations.md is read, for the descriptions' links; none names the repository's path. */
  readonly runbookBaseUrl?: string;
}

const FIVE_MINUTES = Duration.minutes(5);
/**
 * The window of a group's failure-streak and bootstrap-time alarms: a replacement loop turns
 * in minutes, so an hour holds several turns, and a scale-out enough bootstraps for a p90.
 */
const HOUR = Duration.hours(1);

/** The alarms (to an SNS topic) and the dashboard of one selfdeploy installation. */
export class SelfDeployMonitoring extends Construct {
  /** Every alarm, in creation order. */
  public readonly alarms: cloudwatch.Alarm[] = [];
  /** The CloudWatch dashboard. */
  public readonly dashboard: cloudwatch.Dashboard;

  private readonly runbookBaseUrl: string | undefined;

  public constructor(scope: Construct, id: string, props: SelfDeployMonitoringProps) {
    super(scope, id);
    this.runbookBaseUrl = props.runbookBaseUrl;
    const metric = (name: MetricName, group: MonitoredGroup, statistic: string, period = FIVE_MINUTES) =>
      new cloudwatch.Metric({
        namespace: METRIC_NAMESPACE,
        metricName: name,
        dimensionsMap: groupDimensions(group.name),
        statistic,
        period,
      });
    // The reconciler publishes StuckInstances every run, zeros included. A period of two runs
    // always holds a data point while it runs, so missing data means it is not running.
    const stuckPeriod = Duration.seconds(props.reconcileInterval.toSeconds() * 2);
    // While a launch still waits for its agent, a reconcile may count the instance as stuck;
    // only a stuck count that outlasts that wait is worth waking someone for.
    const stuckPeriods = Math.ceil(props.agentWait.toSeconds() / stuckPeriod.toSeconds()) + 1;

    for (const group of props.groups) {
      this.alarm('BootstrapFailed', group.id, {
        metric: metric(MetricName.BootstrapFailed, group, 'Sum'),
        threshold: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      // CloudWatch counts no sequences: "N failed, none succeeded, within the hour" stands for
      // "N in a row". A period without either metric is no streak (FILL makes it 0).
      this.alarm('FailureStreak', group.id, {
        metric: new cloudwatch.MathExpression({
          expression: 'IF(FILL(succeeded, 0) > 0, 0, FILL(failed, 0))',
          usingMetrics: {
            failed: metric(MetricName.BootstrapFailed, group, 'Sum', HOUR),
            succeeded: metric(MetricName.BootstrapSucceeded, group, 'Sum', HOUR),
          },
          period: HOUR,
        }),
        threshold: props.failureStreak,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      this.alarm('BootstrapTime', group.id, {
        metric: metric(MetricName.BootstrapDuration, group, 'p90', HOUR),
        threshold: group.bootstrapBudget.toSeconds(),
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      this.alarm('StuckInstances', group.id, {
        metric: metric(MetricName.StuckInstances, group, 'Maximum', stuckPeriod),
        evaluationPeriods: stuckPeriods,
        threshold: 1,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      });
      this.alarm('DeployFailed', group.id, {
        metric: metric(MetricName.DeployFailed, group, 'Sum'),
        threshold: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }
    this.alarm('FunctionErrors', '', {
      metric: props.function.metricErrors({ period: FIVE_MINUTES, statistic: 'Sum' }),
      threshold: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    // An agent wait is a new message at each look, so only a message that failed (and came
    // back after the visibility timeout) or a backlog the mapping cannot drain grows this old.
    this.alarm('QueueBacklog', '', {
      metric: new cloudwatch.MathExpression({
        expression: `MAX([${props.eventQueues.map((_, index) => `q${index}`).join(', ')}])`,
        usingMetrics: Object.fromEntries(
          props.eventQueues.map((queue, index) => [
            `q${index}`,
            queue.metricApproximateAgeOfOldestMessage({ period: FIVE_MINUTES, statistic: 'Maximum' }),
          ]),
        ),
        label: 'Oldest message of either queue (seconds)',
        period: FIVE_MINUTES,
      }),
      threshold: props.visibilityTimeout.toSeconds(),
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    this.alarm('DeadLetters', '', {
      metric: props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
        period: FIVE_MINUTES,
        statistic: 'Maximum',
      }),
      threshold: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    for (const alarm of this.alarms) {
      alarm.addAlarmAction(new actions.SnsAction(props.topic));
      alarm.addOkAction(new actions.SnsAction(props.topic));
    }

    const perGroup = (name: MetricName, statistics: readonly string[], period?: Duration) =>
      props.groups.flatMap((group) =>
        statistics.map((statistic) =>
          // Labels only on the dashboard: a labelled alarm metric is rendered as metric math.
          metric(name, group, statistic, period).with({ label: `${group.name} ${name} ${statistic}` }),
        ),
      );
    const fn = props.function;
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      widgets: [
        [
          new cloudwatch.AlarmStatusWidget({
            title: 'selfdeploy alarms',
            alarms: this.alarms,
            width: 24,
            height: 3,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Bootstraps',
            left: [
              ...perGroup(MetricName.BootstrapSucceeded, ['Sum']),
              ...perGroup(MetricName.BootstrapFailed, ['Sum']),
            ],
            width: 12,
          }),
          new cloudwatch.GraphWidget({
            title: 'Bootstrap duration (seconds)',
            left: perGroup(MetricName.BootstrapDuration, ['p50', 'p90', 'p99']),
            leftAnnotations: props.groups.map((group) => ({
              value: group.bootstrapBudget.toSeconds(),
              label: `${group.name} bootstrapBudget`,
            })),
            width: 12,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Operator deployments',
            left: [
              ...perGroup(MetricName.DeploySucceeded, ['Sum']),
              ...perGroup(MetricName.DeployFailed, ['Sum']),
            ],
            width: 12,
          }),
          new cloudwatch.GraphWidget({
            title: 'Launches without a deploy (paused)',
            left: perGroup(MetricName.LaunchedWithoutDeploy, ['Sum']),
            width: 12,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Stuck instances',
            left: perGroup(MetricName.StuckInstances, ['Maximum'], stuckPeriod),
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            title: 'SSM agent wait (seconds)',
            left: perGroup(MetricName.AgentWait, ['p90', 'Maximum']),
            width: 8,
          }),
          new cloudwatch.GraphWidget({
            title: 'Lifecycle actions already ended at completion',
            left: perGroup(MetricName.LifecycleActionExpired, ['Sum']),
            width: 8,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Orchestrator invocations and errors',
            left: [
              fn.metricInvocations({ period: FIVE_MINUTES }),
              fn.metricErrors({ period: FIVE_MINUTES }),
              fn.metricThrottles({ period: FIVE_MINUTES }),
            ],
            right: [
              props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: FIVE_MINUTES }),
              ...props.eventQueues.map((queue) =>
                queue.metricApproximateAgeOfOldestMessage({ period: FIVE_MINUTES }),
              ),
            ],
            width: 12,
          }),
          new cloudwatch.GraphWidget({
            title: 'Orchestrator duration (ms)',
            left: ['p50', 'p99', 'Maximum'].map((statistic) =>
              fn.metricDuration({ period: FIVE_MINUTES, statistic }),
            ),
            width: 12,
          }),
        ],
      ],
    });
  }

  /** Adds alarm `name` (of the group whose construct id is `groupId`, or '') described by its runbook entry. */
  private alarm(
    name: AlarmName,
    groupId: string,
    props: Omit<cloudwatch.AlarmProps, 'evaluationPeriods' | 'alarmDescription'> & {
      evaluationPeriods?: number;
    },
  ): void {
    this.alarms.push(
      new cloudwatch.Alarm(this, `${groupId}${name}`, {
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        ...props,
        alarmDescription: alarmDescription(name, this.runbookBaseUrl),
      }),
    );
  }
}
