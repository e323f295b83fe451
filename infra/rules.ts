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
  /** The orchestrator function, the target of every rule. */
  readonly function: lambda.IFunction;
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
 * groups, terminal statuses of commands of exactly this document, and the reconcile schedule.
 */
export function addOrchestratorRules(scope: Construct, props: OrchestratorRulesProps): void {
  const target = new targets.LambdaFunction(props.function, {
    deadLetterQueue: props.deadLetterQueue,
    maxEventAge: props.maxEventAge,
  });
  new events.Rule(scope, 'LaunchRule', {
    description: 'selfdeploy: launch lifecycle actions of the managed groups',
    eventPattern: toCdkPattern(launchLifecyclePattern([...props.groupNames])),
    targets: [target],
  });
  new events.Rule(scope, 'CommandStatusRule', {
    description: `selfdeploy: terminal statuses of ${props.documentName} commands`,
    eventPattern: toCdkPattern(commandStatusPattern(props.documentName)),
    targets: [target],
  });
  new events.Rule(scope, 'ReconcileSchedule', {
    description: 'selfdeploy: repairs what lost events left behind',
    schedule: events.Schedule.rate(props.reconcileInterval),
    targets: [target],
  });
}

/** CDK spells detail-type as detailType and passes every other key through. */
function toCdkPattern(pattern: EventPattern): events.EventPattern {
  const { 'detail-type': detailType, ...rest } = pattern;
  return { ...rest, detailType } as events.EventPattern;
}
