import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SQSClient } from '@aws-sdk/client-sqs';
import { SSMClient } from '@aws-sdk/client-ssm';

/** The AWS clients the orchestrator uses; injected so tests pass mocks and local runs pass endpoints. */
export interface AwsClients {
  readonly autoScaling: AutoScalingClient;
  readonly ssm: SSMClient;
  readonly sqs: SQSClient;
  /** For the `selfdeploy:*` tags a deploy leaves on its instance. */
  readonly ec2: EC2Client;
}

/**
 * Builds the clients once per container. Adaptive retry mode rate-limits the client itself
 * when AWS throttles, so bursts of launches slow down instead of failing. Endpoints come
 * from the SDK's standard settings (AWS_ENDPOINT_URL_SSM, AWS_ENDPOINT_URL_AUTO_SCALING, AWS_ENDPOINT_URL_SQS,
 * AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL), which is how the local control plane is reached. Credentials: the SDK's
 * default chain, of which the bundle keeps only the environment's provider (env-credentials.ts):
 * where Lambda puts the role's credentials, and the local control plane its own.
 */
export function createClients(): AwsClients {
  const settings = { retryMode: 'adaptive', maxAttempts: 10 } as const;
  return {
    autoScaling: new AutoScalingClient(settings),
    ssm: new SSMClient(settings),
    sqs: new SQSClient(settings),
    ec2: new EC2Client(settings),
  };
}
