import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  aws_autoscaling as autoscaling,
  Duration,
  aws_ec2 as ec2,
  aws_iam as iam,
  RemovalPolicy,
  Stack,
  type StackProps,
  Validations,
} from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { shellQuote } from './document';
import { outputs } from './existing-groups-stack';
import { SelfDeploy, SelfDeployPropsError } from './self-deploy';

/** Props of {@link DemoStack}. */
export interface DemoStackProps extends StackProps {
  /**
   * Public git repository of a Capistrano application whose `local_production` stage is a
   * copy of selfdeploy's scripts/instance/capistrano/local_production.rb.
   * @default a one-page application in a repository created on each instance
   */
  readonly repositoryUrl?: string;
  /**
   * E-mail address for the alarms.
   * @default no subscription
   */
  readonly alarmEmail?: string;
  /**
   * Instance type of the demo group (arm64).
   * @default t4g.small
   */
  readonly instanceType?: ec2.InstanceType;
}

const APP_USER = 'deploy';
const APP_PATH = '/var/www/app';
const DEPLOY_PATH = '/var/www/app/deploy';
const USER_DATA_SCRIPT = path.join(__dirname, 'demo', 'user-data.sh');
// selfdeploy's shipped Capistrano stage, which the demo application uses unchanged.
const STAGE_PATH = path.join(__dirname, '..', 'scripts', 'instance', 'capistrano', 'local_production.rb');
const STAGE_DELIMITER = 'SELFDEPLOY_STAGE_END';

/**
 * A shell function printing `stage` byte for byte: a quoted here-document expands nothing,
 * and its last line's newline is the file's own.
 */
function stageFunction(stage: string): string {
  if (!stage.endsWith('\n') || stage.split('\n').includes(STAGE_DELIMITER)) {
    throw new Error(`${STAGE_PATH} must end with a newline and have no line "${STAGE_DELIMITER}"`);
  }
  return `write_stage() {\n  cat <<'${STAGE_DELIMITER}'\n${stage}${STAGE_DELIMITER}\n}`;
}

/**
 * Everything needed to try selfdeploy in an empty account: a small VPC, an Amazon Linux
 * 2023 group whose instances come up ready to deploy, and selfdeploy attached to it.
 */
export class DemoStack extends Stack {
  /** The demo group. */
  public readonly group: autoscaling.AutoScalingGroup;
  /** The selfdeploy installation. */
  public readonly selfDeploy: SelfDeploy;

  public constructor(scope: Construct, id: string, props: DemoStackProps = {}) {
    super(scope, id, props);
    if (
      props.repositoryUrl !== undefined &&
      !/^(https|git|ssh|file):\/\/[\x21-\x7e]+$/.test(props.repositoryUrl)
    ) {
      throw new SelfDeployPropsError(
        `repositoryUrl ${JSON.stringify(props.repositoryUrl)} must be an https://, git://, ssh:// or file:// URL`,
      );
    }

    // Public subnets only: the instances reach SSM and package repositories without a NAT
    // gateway, and the security group admits no inbound traffic at all.
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [{ name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 }],
    });
    vpc.addFlowLog('FlowLog');
    const securityGroup = new ec2.SecurityGroup(this, 'InstanceSecurityGroup', {
      vpc,
      description:
        'selfdeploy demo instances: no inbound traffic; outbound to SSM, git and package repositories',
      allowAllOutbound: true,
    });

    const role = new iam.Role(this, 'InstanceRole', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: 'selfdeploy demo instances: SSM agent, command output, deploy parameters',
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore')],
    });

    const userData = ec2.UserData.forLinux();
    userData.addCommands(
      `APP_USER=${shellQuote(APP_USER)} APP_PATH=${shellQuote(APP_PATH)} DEPLOY_PATH=${shellQuote(DEPLOY_PATH)}`,
      `REPOSITORY_URL=${shellQuote(props.repositoryUrl ?? '')}`,
      stageFunction(readFileSync(STAGE_PATH, 'utf8')),
      readFileSync(USER_DATA_SCRIPT, 'utf8'),
    );

    const launchTemplate = new ec2.LaunchTemplate(this, 'LaunchTemplate', {
      machineImage: ec2.MachineImage.latestAmazonLinux2023({ cpuType: ec2.AmazonLinuxCpuType.ARM_64 }),
      instanceType: props.instanceType ?? new ec2.InstanceType('t4g.small'),
      role,
      userData,
      securityGroup,
      requireImdsv2: true,
      associatePublicIpAddress: true,
      blockDevices: [
        {
          deviceName: '/dev/xvda',
          volume: ec2.BlockDeviceVolume.ebs(16, { encrypted: true, volumeType: ec2.EbsDeviceVolumeType.GP3 }),
        },
      ],
    });

    this.group = new autoscaling.AutoScalingGroup(this, 'Group', {
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      launchTemplate,
      minCapacity: 1,
      maxCapacity: 3,
      cooldown: Duration.minutes(5),
      healthChecks: autoscaling.HealthChecks.ec2({ gracePeriod: Duration.minutes(5) }),
    });
    Validations.of(this.group).acknowledge({
      id: 'AwsSolutions-AS3',
      reason:
        "selfdeploy's BootstrapFailed alarm and dashboard report every launch's outcome; per-instance " +
        'scaling notifications would repeat them.',
    });

    this.selfDeploy = new SelfDeploy(this, 'SelfDeploy', {
      groups: [
        {
          autoScalingGroup: this.group,
          environment: 'production',
          appUser: APP_USER,
          deployPath: DEPLOY_PATH,
          appPath: APP_PATH,
        },
      ],
      alarmEmail: props.alarmEmail,
      logRemovalPolicy: RemovalPolicy.DESTROY,
    });
    this.selfDeploy.grantInstance(role);
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]',
      reason: 'AmazonSSMManagedInstanceCore is the AWS-maintained minimum the SSM agent needs.',
    });
    outputs(this, this.selfDeploy);
  }
}
