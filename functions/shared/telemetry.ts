import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { GROUP_DIMENSION, METRIC_NAMESPACE, type MetricName, SERVICE_NAME } from './metric-names';

/** Where the orchestrator's metrics go; injected so tests can read what was recorded. */
export interface MetricSink {
  /** Records one value of `name` for `group` (Count unless `unit` says Seconds). */
  record(name: MetricName, group: string, value?: number, unit?: 'Count' | 'Seconds'): void;
}

export const logger = new Logger({ serviceName: SERVICE_NAME });

const metrics = new Metrics({ namespace: METRIC_NAMESPACE, serviceName: SERVICE_NAME });

/** CloudWatch metrics as EMF log lines, one per value, each with its group as a dimension. */
export const cloudWatchMetrics: MetricSink = {
  record(name, group, value = 1, unit = 'Count') {
    // A single metric is published at once with its own dimensions, so values of several
    // groups recorded in one invocation never share (or overwrite) a dimension set.
    const single = metrics.singleMetric();
    single.addDimension(GROUP_DIMENSION, group);
    single.addMetric(name, unit === 'Seconds' ? MetricUnit.Seconds : MetricUnit.Count, value);
  },
};
