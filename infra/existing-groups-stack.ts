import { CfnOutput, aws_iam as iam, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { ExistingGroupsConfig } from './app-config';
import { instanceRoleEnvironments, toSelfDeployProps } from './app-config';
import { SelfDeploy } from './self-deploy';

/** Props of {@link ExistingGroupsStack}. */
export interface ExistingGroupsStackProps extends StackProps {
  /** Which groups, with which settings. */
  readonly config: ExistingGroupsConfig;
}

/** selfdeploy for Auto Scaling groups that already exist, named in a configuration. */
export class ExistingGroupsStack extends Stack {
  /** The selfdeploy installation. */
  public readonly selfDeploy: SelfDeploy;

  public constructor(scope: Construct, id: string, props: ExistingGroupsStackProps) {
    super(scope, id, props);
    this.selfDeploy = new SelfDeploy(this, 'SelfDeploy', toSelfDeployProps(props.config));
    for (const [roleName, environments] of instanceRoleEnvironments(props.config)) {
      // Imported roles take the grant as a separate policy attached to them.
      this.selfDeploy.grantInstance(iam.Role.fromRoleName(this, `InstanceRole${roleName}`, roleName), {
        environments,
      });
    }
    outputs(this, this.selfDeploy);
  }
}

/** What an operator needs after a deploy: the function to test, the document, the topic. */
export function outputs(stack: Stack, selfDeploy: SelfDeploy): void {
  new CfnOutput(stack, 'FunctionName', {
    description: 'Orchestrator function (console Test tab: {"action":"reconcile"})',
    value: selfDeploy.function.functionName,
  });
  new CfnOutput(stack, 'DocumentName', {
    description: 'SelfDeploy Command document',
    value: selfDeploy.documentName,
  });
  new CfnOutput(stack, 'CommandOutputLogGroup', {
    description: "Every command's full output",
    value: selfDeploy.outputLogGroup.logGroupName,
  });
  new CfnOutput(stack, 'AlarmTopicArn', {
    description: 'Alarm notifications',
    value: selfDeploy.alarmTopic.topicArn,
  });
  new CfnOutput(stack, 'DeadLetterQueueUrl', {
    description: 'Events the orchestrator could not handle',
    value: selfDeploy.deadLetterQueue.queueUrl,
  });
}
