import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CompleteLifecycleActionCommand } from '@aws-sdk/client-auto-scaling';
import { SendCommandCommand } from '@aws-sdk/client-ssm';
import { AdaptiveRetryStrategy } from '@smithy/core/retry';
import { type AwsClients, createClients } from '../../functions/shared/clients';

// The unit tier's other tests mock `send` itself, which skips the SDK's retry logic; these
// tests put a real HTTP peer on loopback behind the standard endpoint variables instead.
let server: Server;
let answers: { status: number; body: string; type: string }[];
const targets: string[] = [];
/** The variables this file sets, as they were before it. */
const savedEnv: Record<string, string | undefined> = {};

beforeAll(async () => {
  server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      targets.push(String(request.headers['x-amz-target'] ?? 'query'));
      const answer = answers.shift() ?? { status: 500, body: '{}', type: 'application/json' };
      response.writeHead(answer.status, { 'content-type': answer.type }).end(answer.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const testEnv = {
    AWS_ENDPOINT_URL_SSM: endpoint,
    AWS_ENDPOINT_URL_AUTO_SCALING: endpoint,
    AWS_REGION: 'us-west-2',
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
  };
  for (const name of Object.keys(testEnv)) savedEnv[name] = process.env[name];
  Object.assign(process.env, testEnv);
});

afterAll(async () => {
  // Leave the environment as it was found, for the test files that run after this one.
  for (const [name, value] of Object.entries(savedEnv)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  targets.length = 0;
});

const ssmThrottled = {
  status: 400,
  type: 'application/x-amz-json-1.1',
  body: JSON.stringify({ __type: 'ThrottlingException', message: 'Rate exceeded' }),
};
const autoScalingThrottled = {
  status: 400,
  type: 'text/xml',
  body: '<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>1</RequestId></ErrorResponse>',
};

/**
 * The clients createClients builds, each with its retry strategy swapped for a twin that
 * retries the same errors as often but does not wait: no backoff, no rate limiting. The
 * waits are the SDK's own; what these tests check is what is retried, and how often.
 */
async function clientsWithoutWaiting(): Promise<AwsClients> {
  const clients = createClients();
  for (const client of [clients.ssm, clients.autoScaling]) {
    const twin = new AdaptiveRetryStrategy(await client.config.maxAttempts(), {
      backoff: { computeNextBackoffDelay: () => 0, setDelayBase: () => undefined },
      rateLimiter: { getSendToken: async () => undefined, updateClientSendingRate: () => undefined },
    });
    client.config.retryStrategy = async () => twin;
  }
  return clients;
}

describe('the AWS clients', () => {
  it('retry in adaptive mode, up to 10 attempts', async () => {
    const { ssm, autoScaling } = createClients();
    for (const client of [ssm, autoScaling]) {
      expect(await client.config.retryStrategy()).toBeInstanceOf(AdaptiveRetryStrategy);
      expect(await client.config.maxAttempts()).toBe(10);
    }
  });

  it('take credentials from the environment, session token included', async () => {
    // Where Lambda puts the role's credentials; the bundle keeps no other provider.
    const names = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'];
    const before = Object.fromEntries(names.map((name) => [name, process.env[name]]));
    try {
      Object.assign(process.env, {
        AWS_ACCESS_KEY_ID: 'ASIAFROMENVIRONMENT1',
        AWS_SECRET_ACCESS_KEY: 'from-environment',
        AWS_SESSION_TOKEN: 'session-from-environment',
      });
      for (const client of Object.values(createClients())) {
        expect(await client.config.credentials()).toMatchObject({
          accessKeyId: 'ASIAFROMENVIRONMENT1',
          sessionToken: 'session-from-environment',
        });
      }
    } finally {
      for (const [name, value] of Object.entries(before)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('reach the endpoint the standard variables name and retry SSM throttling until the call succeeds', async () => {
    answers = [
      ssmThrottled,
      ssmThrottled,
      {
        status: 200,
        type: 'application/x-amz-json-1.1',
        body: JSON.stringify({ Command: { CommandId: 'aaaaaaaa-1111-2222-3333-444444444444' } }),
      },
    ];
    const { ssm } = await clientsWithoutWaiting();

    const output = await ssm.send(
      new SendCommandCommand({ DocumentName: 'SelfDeploy', InstanceIds: ['i-1234567890abcdef0'] }),
    );

    expect(output.Command?.CommandId).toBe('aaaaaaaa-1111-2222-3333-444444444444');
    // Retried without waiting: the unit tier does not sleep.
    expect(output.$metadata).toMatchObject({ attempts: 3, totalRetryDelay: 0 });
    expect(targets).toEqual(['AmazonSSM.SendCommand', 'AmazonSSM.SendCommand', 'AmazonSSM.SendCommand']);
  });

  it('retry Auto Scaling throttling too', async () => {
    answers = [
      autoScalingThrottled,
      {
        status: 200,
        type: 'text/xml',
        body: '<CompleteLifecycleActionResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><CompleteLifecycleActionResult/><ResponseMetadata><RequestId>2</RequestId></ResponseMetadata></CompleteLifecycleActionResponse>',
      },
    ];
    const { autoScaling } = await clientsWithoutWaiting();

    await autoScaling.send(
      new CompleteLifecycleActionCommand({
        AutoScalingGroupName: 'web',
        LifecycleHookName: 'selfdeploy-launch',
        InstanceId: 'i-1234567890abcdef0',
        LifecycleActionResult: 'CONTINUE',
      }),
    );

    expect(targets).toHaveLength(2);
  });

  it('do not retry an error that is not transient', async () => {
    answers = [
      {
        status: 400,
        type: 'application/x-amz-json-1.1',
        body: JSON.stringify({ __type: 'InvalidInstanceId', message: 'Instances not in a valid state' }),
      },
    ];
    const { ssm } = await clientsWithoutWaiting();

    await expect(
      ssm.send(new SendCommandCommand({ DocumentName: 'SelfDeploy', InstanceIds: ['i-1234567890abcdef0'] })),
    ).rejects.toMatchObject({ name: 'InvalidInstanceId' });
    expect(targets).toHaveLength(1);
  });
});
