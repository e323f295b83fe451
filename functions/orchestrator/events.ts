import * as z from 'zod/mini';
import { InvalidInputError } from '../shared/errors';
import {
  COMMAND_STATUS_DETAIL_TYPE,
  INVOCATION_STATUS_DETAIL_TYPE,
  LAUNCH_DETAIL_TYPE,
  SCHEDULED_DETAIL_TYPE,
  TERMINATE_DETAIL_TYPE,
} from '../shared/event-patterns';
import { OPERATOR_ACTIONS, type OperatorAction, operatorActionSchema } from '../shared/operator-actions';
import { describeIssues, documentParameter } from '../shared/validation';

/** EC2 instance ids as Auto Scaling and SSM print them. */
export const INSTANCE_ID = /^i-[0-9a-f]{8,17}$/;
/** Lifecycle action tokens and SSM command ids (UUIDs). */
export const UUID = /^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$/;
const instanceId = () => z.string().check(z.regex(INSTANCE_ID, 'must be an EC2 instance id (i-…)'));

/** The EventBridge envelope; `time` is not parsed (AWS's own samples put placeholders there). */
const envelope = {
  version: z.optional(z.string()),
  id: z.optional(z.string()),
  account: z.optional(z.string()),
  time: z.optional(z.string()),
  region: z.optional(z.string()),
  resources: z.optional(z.array(z.string())),
};

const warmPoolPlace = z.optional(z.enum(['EC2', 'AutoScalingGroup', 'WarmPool']));

const lifecycleEventSchema = z.object({
  ...envelope,
  source: z.literal('aws.autoscaling'),
  'detail-type': z.enum([LAUNCH_DETAIL_TYPE, TERMINATE_DETAIL_TYPE]),
  detail: z.object({
    LifecycleActionToken: z.string().check(z.regex(UUID, 'must be a lifecycle action token (UUID)')),
    AutoScalingGroupName: documentParameter('autoScalingGroupName').check(z.minLength(1)),
    LifecycleHookName: documentParameter('lifecycleHookName').check(z.minLength(1)),
    EC2InstanceId: instanceId(),
    LifecycleTransition: z.enum([
      'autoscaling:EC2_INSTANCE_LAUNCHING',
      'autoscaling:EC2_INSTANCE_TERMINATING',
    ]),
    NotificationMetadata: z.optional(z.string().check(z.maxLength(4000))),
    Origin: warmPoolPlace,
    Destination: warmPoolPlace,
  }),
});
export type LifecycleEvent = z.output<typeof lifecycleEventSchema>;

const commandDetail = {
  'command-id': z.string().check(z.regex(UUID, 'must be an SSM command id (UUID)')),
  'document-name': z.string().check(z.minLength(1)),
  'requested-date-time': z.optional(z.string()),
  status: z.string().check(z.minLength(1)),
};

const commandStatusEventSchema = z.object({
  ...envelope,
  source: z.literal('aws.ssm'),
  'detail-type': z.literal(COMMAND_STATUS_DETAIL_TYPE),
  detail: z.object({
    ...commandDetail,
    'expire-after': z.optional(z.string()),
    parameters: z.optional(z.record(z.string(), z.array(z.string()))),
  }),
});
export type CommandStatusEvent = z.output<typeof commandStatusEventSchema>;

const invocationStatusEventSchema = z.object({
  ...envelope,
  source: z.literal('aws.ssm'),
  'detail-type': z.literal(INVOCATION_STATUS_DETAIL_TYPE),
  detail: z.object({ ...commandDetail, 'instance-id': instanceId() }),
});
export type InvocationStatusEvent = z.output<typeof invocationStatusEventSchema>;

const scheduledEventSchema = z.object({
  ...envelope,
  source: z.literal('aws.events'),
  'detail-type': z.literal(SCHEDULED_DETAIL_TYPE),
});

/** Auto Scaling's test notification (SNS/SQS shape, or as an EventBridge detail). */
const testNotificationSchema = z.object({
  Event: z.literal('autoscaling:TEST_NOTIFICATION'),
  AutoScalingGroupName: z.optional(z.string()),
});

const redeploySchema = z
  .strictObject({
    action: z.literal('redeploy'),
    instanceIds: z.optional(z.array(instanceId()).check(z.minLength(1), z.maxLength(1000))),
    autoScalingGroupName: z.optional(documentParameter('autoScalingGroupName').check(z.minLength(1))),
    revision: z.optional(documentParameter('revision')),
  })
  .check(
    z.refine((value) => (value.instanceIds === undefined) !== (value.autoScalingGroupName === undefined), {
      message: 'name exactly one of instanceIds or autoScalingGroupName',
    }),
  );
export type RedeployAction = z.output<typeof redeploySchema>;

const manualSchema = z.discriminatedUnion('action', [
  redeploySchema,
  z.strictObject({ action: z.literal('reconcile') }),
]);

/** What the handler was asked to do, after validation. */
export type Classified =
  | { kind: 'lifecycle'; event: LifecycleEvent }
  | { kind: 'test-notification'; group: string | undefined }
  | { kind: 'command-status'; event: CommandStatusEvent }
  | { kind: 'invocation-status'; event: InvocationStatusEvent }
  | { kind: 'reconcile'; trigger: 'schedule' | 'manual' }
  | { kind: 'redeploy'; action: RedeployAction }
  | { kind: 'operator'; action: OperatorAction };

const MANUAL_ACTIONS = ['redeploy', 'reconcile', ...OPERATOR_ACTIONS].join(', ');
const ACCEPTED =
  'an Auto Scaling lifecycle event, an SSM command status event, a scheduled event, ' +
  `or a manual action {"action": …} (${MANUAL_ACTIONS})`;

function parse<T>(schema: z.ZodMiniType<T>, input: unknown, what: string): T {
  const result = schema.safeParse(input);
  if (!result.success) {
    throw new InvalidInputError(`invalid ${what}: ${describeIssues(result.error)}`);
  }
  return result.data;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Decides what an input is and validates it completely, before anything touches AWS.
 * Throws InvalidInputError with one line that says what was wrong.
 */
export function classify(input: unknown): Classified {
  if (!isRecord(input)) {
    throw new InvalidInputError(`expected a JSON object (${ACCEPTED}), got ${describeType(input)}`);
  }
  if ('action' in input) {
    if (OPERATOR_ACTIONS.some((name) => name === input.action)) {
      return { kind: 'operator', action: parse(operatorActionSchema, input, `${input.action} action`) };
    }
    if (input.action !== 'redeploy' && input.action !== 'reconcile') {
      throw new InvalidInputError(
        `unknown action ${JSON.stringify(input.action)}: expected one of ${MANUAL_ACTIONS}`,
      );
    }
    const action = parse(manualSchema, input, `${input.action} action`);
    return action.action === 'reconcile'
      ? { kind: 'reconcile', trigger: 'manual' }
      : { kind: 'redeploy', action };
  }
  const testNotification = testNotificationSchema.safeParse(isRecord(input.detail) ? input.detail : input);
  if (testNotification.success) {
    return { kind: 'test-notification', group: testNotification.data.AutoScalingGroupName };
  }
  const source = input.source;
  const detailType = input['detail-type'];
  if (source === 'aws.autoscaling') {
    return { kind: 'lifecycle', event: parse(lifecycleEventSchema, input, 'Auto Scaling lifecycle event') };
  }
  if (source === 'aws.ssm' && detailType === COMMAND_STATUS_DETAIL_TYPE) {
    return {
      kind: 'command-status',
      event: parse(commandStatusEventSchema, input, 'SSM command status event'),
    };
  }
  if (source === 'aws.ssm' && detailType === INVOCATION_STATUS_DETAIL_TYPE) {
    return {
      kind: 'invocation-status',
      event: parse(invocationStatusEventSchema, input, 'SSM command invocation status event'),
    };
  }
  if (source === 'aws.events') {
    parse(scheduledEventSchema, input, 'scheduled event');
    return { kind: 'reconcile', trigger: 'schedule' };
  }
  if (source !== undefined || detailType !== undefined) {
    throw new InvalidInputError(
      `unsupported event source ${JSON.stringify(source)} / detail-type ${JSON.stringify(detailType)}: expected ${ACCEPTED}`,
    );
  }
  throw new InvalidInputError(
    `unrecognised input with keys ${JSON.stringify(Object.keys(input))}: expected ${ACCEPTED}`,
  );
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return `a ${typeof value}`;
}
