import {
  ArnFormat,
  aws_iam as iam,
  type aws_logs as logs,
  Stack,
  type aws_sqs as sqs,
  Validations,
} from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { LAST_DEPLOY_TAG, REVISION_TAG } from '../functions/shared/deploy-tags';
import { SEND_TAG_CONDITION_KEY } from '../functions/shared/send-permission';

/** What the orchestrator's policy is built from. */
export interface OrchestratorGrants {
  /** ARN of the SelfDeploy document. */
  readonly documentArn: string;
  /** ARNs of the managed groups. */
  readonly groupArns: readonly string[];
  /** ARNs of the managed groups that deploy through Standby (`deployWith: standby`). */
  readonly standbyGroupArns: readonly string[];
  /** Names of the managed groups (as the instances' aws:autoscaling:groupName tag has them). */
  readonly groupNames: readonly string[];
  /** The Parameter Store path of the groups' releases, pauses and deployments (`releasePath`). */
  readonly releasePath: string;
  /** The parameters only instances read (pinned revision, deploy key), `{environment}` in their names. */
  readonly instanceParameterNames: readonly string[];
}

/** What the orchestrator does with the parameters under releasePath. */
const RELEASE_RECORD_ACTIONS = [
  'ssm:GetParametersByPath',
  'ssm:GetParameter',
  'ssm:PutParameter',
  'ssm:DeleteParameters',
] as const;

/** The only tags the orchestrator writes: on an instance, what its deploys left live. */
const INSTANCE_TAG_KEYS = [REVISION_TAG, LAST_DEPLOY_TAG] as const;

/**
 * Exactly the calls the orchestrator makes. SendCommand is authorised against both the
 * document and every target instance, so it is allowed for the SelfDeploy document only and
 * for instances of the managed groups only; lifecycle and Standby calls only on the managed
 * groups; parameters only under releasePath; tags only selfdeploy's own, only on instances of
 * the managed groups.
 */
function orchestratorStatements(stack: Stack, grants: OrchestratorGrants): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'SendSelfDeployDocument',
      actions: ['ssm:SendCommand'],
      resources: [grants.documentArn],
    }),
    new iam.PolicyStatement({
      sid: 'SendToManagedGroupInstances',
      actions: ['ssm:SendCommand'],
      // Instance ids are not known in advance; the group tag narrows them to the managed groups.
      resources: [anyInstanceArn(stack)],
      conditions: { StringEquals: { [SEND_TAG_CONDITION_KEY]: [...grants.groupNames] } },
    }),
    new iam.PolicyStatement({
      sid: 'CompleteManagedLifecycleActions',
      actions: ['autoscaling:CompleteLifecycleAction', 'autoscaling:RecordLifecycleActionHeartbeat'],
      resources: [...grants.groupArns],
    }),
    // Only groups that deploy through Standby may be taken out of service, and only by selfdeploy's deploys.
    ...(grants.standbyGroupArns.length === 0
      ? []
      : [
          new iam.PolicyStatement({
            sid: 'StandbyManagedGroups',
            actions: ['autoscaling:EnterStandby', 'autoscaling:ExitStandby'],
            resources: [...grants.standbyGroupArns],
          }),
        ]),
    new iam.PolicyStatement({
      sid: 'ReleaseRecords',
      // Each group's release, pause, deployment (the lock) and step claims, under releasePath only.
      actions: [...RELEASE_RECORD_ACTIONS],
      resources: [releaseParametersArn(stack, grants.releasePath)],
    }),
    // The instances' own parameters often live under the same prefix (/selfdeploy/<environment>/
    // deploy-key beside /selfdeploy/<group>/release): the orchestrator must never change them.
    ...(grants.instanceParameterNames.length === 0
      ? []
      : [
          new iam.PolicyStatement({
            sid: 'NotInstanceParameters',
            effect: iam.Effect.DENY,
            actions: [...RELEASE_RECORD_ACTIONS],
            resources: grants.instanceParameterNames.map((name) =>
              parameterArn(stack, name.replaceAll('{environment}', '*')),
            ),
          }),
        ]),
    new iam.PolicyStatement({
      sid: 'ReadReleasePath',
      // GetParametersByPath is authorised against the path it reads: releasePath itself too.
      actions: ['ssm:GetParametersByPath'],
      resources: [parameterArn(stack, grants.releasePath)],
    }),
    new iam.PolicyStatement({
      sid: 'TagManagedGroupInstances',
      actions: ['ec2:CreateTags'],
      // Instance ids are not known in advance: the group tag narrows them to the managed
      // groups, and the request may carry selfdeploy's own tag keys only.
      resources: [anyInstanceArn(stack)],
      conditions: {
        StringEquals: { 'aws:ResourceTag/aws:autoscaling:groupName': [...grants.groupNames] },
        'ForAllValues:StringEquals': { 'aws:TagKeys': [...INSTANCE_TAG_KEYS] },
        // ForAllValues holds for a request without tags: require some.
        Null: { 'aws:TagKeys': 'false' },
      },
    }),
    new iam.PolicyStatement({
      sid: 'ReadCommandsInstancesAndGroups',
      // None of these supports resource-level permissions: IAM only accepts "*" for them.
      // All are read-only.
      actions: [
        // completion and reconcile: find the SelfDeploy commands of an instance
        'ssm:ListCommands',
        // completion: the instances a command ran on
        'ssm:ListCommandInvocations',
        // failure logs: the exit code and output tail of a failed run
        'ssm:GetCommandInvocation',
        // launch and redeploy: whether instances' agents are online
        'ssm:DescribeInstanceInformation',
        // reconcile and redeploy: the instances of the managed groups and their lifecycle states
        'autoscaling:DescribeAutoScalingGroups',
        // redeploy: the group and state of named instances
        'autoscaling:DescribeAutoScalingInstances',
        // reconcile: instances waiting to enter a warm pool are listed only here
        'autoscaling:DescribeWarmPool',
        // completion, reconcile and the launch's duplicate check: when an instance's current wait
        // began (its launch activity), so that a command of an earlier wait is no evidence
        'autoscaling:DescribeScalingActivities',
        // reconcile: the hook's NotificationMetadata (revision and environment overrides)
        'autoscaling:DescribeLifecycleHooks',
        // status and reconcile: the revision tags of the groups' instances
        'ec2:DescribeTags',
      ],
      resources: ['*'],
    }),
  ];
}

/** Every EC2 instance of the stack's account and region. */
function anyInstanceArn(stack: Stack): string {
  return stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' });
}

/** Every parameter under `path` (a Parameter Store path such as /selfdeploy). */
function releaseParametersArn(stack: Stack, path: string): string {
  return parameterArn(stack, `${path}/*`);
}

/** ARN of an SSM parameter by name (with or without its leading slash). */
export function parameterArn(stack: Stack, name: string): string {
  return stack.formatArn({
    service: 'ssm',
    resource: 'parameter',
    resourceName: name.replace(/^\//, ''),
    arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
  });
}

/**
 * A resource as cdk-nag names it in a finding id: references become `<LogicalId>` or
 * `<LogicalId.Attribute>`, pseudo parameters `<AWS::Region>`.
 */
function nagResourceName(stack: Stack, value: string): string {
  const flatten = (node: unknown): string => {
    if (typeof node === 'string') return node;
    if (typeof node === 'object' && node !== null) {
      const fields = node as Record<string, unknown>;
      if ('Ref' in fields) return `<${flatten(fields.Ref)}>`;
      const getAtt = fields['Fn::GetAtt'];
      if (Array.isArray(getAtt)) return `<${getAtt.map(flatten).join('.')}>`;
      const join = fields['Fn::Join'];
      if (Array.isArray(join)) return (join[1] as unknown[]).map(flatten).join(join[0] as string);
    }
    return JSON.stringify(node);
  };
  return flatten(stack.resolve(value));
}

/**
 * The orchestrator's role: exactly orchestratorStatements, each wildcard acknowledged with its
 * reason; `queue` is the launch queue, where agent waits go back.
 */
export function orchestratorRole(
  scope: Construct,
  grants: OrchestratorGrants & { readonly logGroup: logs.ILogGroup; readonly queue: sqs.IQueue },
): iam.Role {
  const stack = Stack.of(scope);
  const role = new iam.Role(scope, 'FunctionRole', {
    assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
    description:
      'selfdeploy orchestrator: runs the SelfDeploy document on managed groups and completes their hooks',
  });
  for (const statement of orchestratorStatements(stack, grants)) {
    role.addToPolicy(statement);
  }
  grants.logGroup.grantWrite(role);
  // Agent waits go back to the launch queue, the only queue the function sends to; consuming it
  // and the status queue is granted by their event source mappings.
  grants.queue.grantSendMessages(role);
  const wildcardFinding = (arn: string) => `AwsSolutions-IAM5[Resource::${nagResourceName(stack, arn)}]`;
  Validations.of(role).acknowledge({
    id: wildcardFinding(anyInstanceArn(stack)),
    reason:
      'ssm:SendCommand and ec2:CreateTags must name instances, unknown in advance: instance/* is narrowed by ' +
      "the aws:autoscaling:groupName tag condition to the managed groups (and CreateTags to selfdeploy's tag keys).",
  });
  Validations.of(role).acknowledge({
    id: wildcardFinding(releaseParametersArn(stack, grants.releasePath)),
    reason:
      "The groups' release, pause, deployment and step-claim parameters are created at run time under " +
      'releasePath, one path per group: the wildcard covers that path only.',
  });
  for (const groupArn of grants.groupArns) {
    Validations.of(role).acknowledge({
      id: wildcardFinding(groupArn),
      reason:
        "A group ARN contains the group's id, unknown for a group named by name: the wildcard stands for " +
        'that id only; the group name is exact.',
    });
  }
  Validations.of(role).acknowledge({
    id: 'AwsSolutions-IAM5[Resource::*]',
    reason:
      'Read-only SSM, Auto Scaling and EC2 list/describe calls that IAM cannot scope by resource, each named.',
  });
  return role;
}
