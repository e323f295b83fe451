/**
 * The condition key under which the orchestrator's role may send the document to an
 * instance: its value (the instance's Auto Scaling group tag) must name a managed group.
 * The CDK policy grants SendCommand with it; the orchestrator names it when SendCommand
 * refuses an instance whose agent is online.
 */
export const SEND_TAG_CONDITION_KEY = 'ssm:resourceTag/aws:autoscaling:groupName';
