import {
  type Duration,
  aws_events as events,
  type aws_lambda as lambda,
  type aws_sqs as sqs,
  aws_events_targets as targets,
} from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import {
  commandStatusPattern,
  type EventPattern,
  launchLifecyclePattern,
} from '../functions/shared/event-patterns';

/** What the rules feeding the orchestrator are built from. */
export interface OrchestratorRulesProps {
  /** The orchestrator function, the target of the reconcile schedule. */
  readonly function: lambda.IFunction;
  /** The queue of launch events: the launch rule's target. */
  readonly queue: sqs.IQueue;
  /** The queue of command status events: the command-status rule's target. */
  readonly statusQueue: sqs.IQueue;
  /** Where events go that EventBridge could not deliver. */
  readonly deadLetterQueue: sqs.IQueue;
  /** Events older than this are dropped: their lifecycle actions have ended. */
  readonly maxEventAge: Duration;
  /** Names of the managed groups. */
  readonly groupNames: readonly string[];
  /** Name of the SelfDeploy document. */
  readonly documentName: string;
  /** How often the reconciler runs. */
  readonly reconcileInterval: Duration;
}

/**
 * The three rules that feed the orchestrator: launch lifecycle actions of exactly the managed
 * groups go to the launch queue and terminal statuses of commands of exactly this document to
 * the status queue, where they are handled in batches; the reconcile schedule invokes it.
 */
export function addOrchestratorRules(scope: Construct, props: OrchestratorRulesProps): void {
  const delivery = { deadLetterQueue: props.deadLetterQueue, maxEventAge: props.maxEventAge };
  const launches = new targets.SqsQueue(props.queue, delivery);
  const statuses = new targets.SqsQueue(props.statusQueue, delivery);
  const invoked = new targets.LambdaFunction(props.function, delivery);
  new events.Rule(scope, 'LaunchRule', {
    description: 'selfdeploy: launch lifecycle actions of the managed groups',
    eventPattern: toCdkPattern(launchLifecyclePattern([...props.groupNames])),
    targets: [launches],
  });
  new events.Rule(scope, 'CommandStatusRule', {
    description: `selfdeploy: terminal statuses of ${props.documentName} commands`,
    eventPattern: toCdkPattern(commandStatusPattern(props.documentName)),
    targets: [statuses],
  });
  new events.Rule(scope, 'ReconcileSchedule', {
    description: 'selfdeploy: repairs what lost events left behind',
    schedule: events.Schedule.rate(props.reconcileInterval),
    targets: [invoked],
  });
}

/** CDK spells detail-type as detailType and passes every other key through. */
function toCdkPattern(pattern: EventPattern): events.EventPattern {
  const { 'detail-type': detailType, ...rest } = pattern;
  return { ...rest, detailType } as events.EventPattern;
}
