import { execFile } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { promisify } from 'node:util';
import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { DescribeTagsCommand, EC2Client } from '@aws-sdk/client-ec2';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { DescribeInstanceInformationCommand, SSMClient } from '@aws-sdk/client-ssm';
import { SignatureV4 } from '@smithy/signature-v4';
import { ControlPlane } from '../../scripts/local/control-plane/control-plane';

jest.setTimeout(30_000);

let plane: ControlPlane;

beforeAll(async () => {
  plane = await ControlPlane.start();
  plane.autoScaling.createGroup({ name: 'web', maxSize: 2, hook: { name: 'h', heartbeatTimeout: 600 } });
});

afterAll(async () => {
  await plane.close();
});

/** SDK settings against the control plane; no retries, so each refusal shows. */
function config(
  overrides: { accessKeyId?: string; secretAccessKey?: string; systemClockOffset?: number } = {},
) {
  const { systemClockOffset, ...credentials } = overrides;
  return {
    endpoint: plane.endpoint,
    region: 'us-east-1',
    credentials: { ...plane.credentials, ...credentials },
    maxAttempts: 1,
    ...(systemClockOffset === undefined ? {} : { systemClockOffset }),
  };
}

type Answer = { name: string; status?: number; message: string };

/** What one call answered: 'ok' with `message` from its output, or the error's name, message and status. */
async function answer(client: { destroy(): void }, call: () => Promise<string>): Promise<Answer> {
  try {
    return { name: 'ok', message: await call() };
  } catch (error) {
    const e = error as Error & { $metadata?: { httpStatusCode?: number } };
    return {
      name: e.name,
      message: e.message,
      ...(e.$metadata?.httpStatusCode ? { status: e.$metadata.httpStatusCode } : {}),
    };
  } finally {
    client.destroy();
  }
}

/** DescribeAutoScalingGroups; on success, the number of groups. */
function describeGroups(client: AutoScalingClient): Promise<Answer> {
  return answer(client, async () => {
    const { AutoScalingGroups } = await client.send(new DescribeAutoScalingGroupsCommand({}));
    return String(AutoScalingGroups?.length);
  });
}

/** DescribeInstanceInformation. */
function describeInstances(client: SSMClient): Promise<Answer> {
  return answer(client, async () => {
    await client.send(new DescribeInstanceInformationCommand({}));
    return '';
  });
}

/** DescribeTags; on success, the number of tags. */
function describeTags(client: EC2Client): Promise<Answer> {
  return answer(client, async () => String((await client.send(new DescribeTagsCommand({}))).Tags?.length));
}

/** Invoke of a function no one registered, by ARN: past the signature check it is not found. */
function invokeByArn(client: LambdaClient): Promise<Answer> {
  return answer(client, async () => {
    await client.send(
      new InvokeCommand({ FunctionName: 'arn:aws:lambda:us-east-1:123456789012:function:nobody:$LATEST' }),
    );
    return '';
  });
}

/** The SDK's hash interface over node:crypto, for SignatureV4. */
class Sha256 {
  readonly #hash;
  public constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    const key =
      typeof secret === 'string' || secret === undefined ? secret : Buffer.from(secret as ArrayBuffer);
    this.#hash = key === undefined ? createHash('sha256') : createHmac('sha256', key);
  }
  public update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.#hash.update(typeof data === 'string' ? data : Buffer.from(data as ArrayBuffer));
  }
  public async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#hash.digest());
  }
}

/** An Auto Scaling call signed by the SDK's own signer with the given scope. */
async function signedQuery(scope: {
  service: string;
  region: string;
}): Promise<{ status: number; body: string }> {
  const url = new URL(plane.endpoint);
  const body = 'Action=DescribeAutoScalingGroups&Version=2011-01-01';
  const signer = new SignatureV4({ ...scope, credentials: plane.credentials, sha256: Sha256 });
  const signed = await signer.sign({
    method: 'POST',
    protocol: 'http:',
    hostname: url.hostname,
    port: Number(url.port),
    path: '/',
    query: {},
    headers: { host: url.host, 'content-type': 'application/x-www-form-urlencoded' },
    body,
  });
  const response = await fetch(plane.endpoint, { method: 'POST', headers: signed.headers, body });
  return { status: response.status, body: await response.text() };
}

const MISMATCH = 'The request signature we calculated does not match the signature you provided.';

describe('the control plane checks SigV4 signatures', () => {
  it('makes fresh credentials shaped like an IAM access key for each control plane', async () => {
    const other = await ControlPlane.start();
    await other.close();

    expect(plane.credentials.accessKeyId).toMatch(/^AKIA[A-Z0-9]{16}$/);
    expect(plane.credentials.secretAccessKey).toHaveLength(40);
    expect(other.credentials.accessKeyId).not.toBe(plane.credentials.accessKeyId);
    expect(plane.env()).toMatchObject({
      AWS_ACCESS_KEY_ID: plane.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: plane.credentials.secretAccessKey,
    });
  });

  it('accepts a request the SDK signed with the control plane credentials, on both protocols', async () => {
    expect(await describeGroups(new AutoScalingClient(config()))).toEqual({ name: 'ok', message: '1' });
    expect(await describeInstances(new SSMClient(config()))).toEqual({ name: 'ok', message: '' });
  });

  it('refuses an unsigned request: MissingAuthenticationToken / MissingAuthenticationTokenException', async () => {
    const query = await fetch(plane.endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'Action=DescribeAutoScalingGroups&Version=2011-01-01',
    });
    const json = await fetch(plane.endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.1',
        'x-amz-target': 'AmazonSSM.DescribeInstanceInformation',
      },
      body: '{}',
    });

    expect(query.status).toBe(403);
    expect(await query.text()).toContain(
      '<Code>MissingAuthenticationToken</Code><Message>Request is missing Authentication Token</Message>',
    );
    expect(json.status).toBe(400);
    expect(await json.json()).toEqual({
      __type: 'MissingAuthenticationTokenException',
      message: 'Missing Authentication Token',
    });
  });

  it('refuses a request signed with the wrong secret: SignatureDoesNotMatch / InvalidSignatureException', async () => {
    const wrong = { secretAccessKey: 'x'.repeat(40) };

    const query = await describeGroups(new AutoScalingClient(config(wrong)));
    const json = await describeInstances(new SSMClient(config(wrong)));

    expect(query).toMatchObject({ name: 'SignatureDoesNotMatch', status: 403 });
    expect(query.message).toContain(MISMATCH);
    expect(json).toMatchObject({ name: 'InvalidSignatureException', status: 400 });
    expect(json.message).toContain(MISMATCH);
  });

  it('refuses an unknown access key: InvalidClientTokenId / UnrecognizedClientException', async () => {
    const unknown = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE' };

    expect(await describeGroups(new AutoScalingClient(config(unknown)))).toEqual({
      name: 'InvalidClientTokenId',
      status: 403,
      message: 'The security token included in the request is invalid.',
    });
    expect(await describeInstances(new SSMClient(config(unknown)))).toEqual({
      name: 'UnrecognizedClientException',
      status: 400,
      message: 'The security token included in the request is invalid.',
    });
  });

  it('refuses a request whose body was changed after signing', async () => {
    const client = new AutoScalingClient(config());
    // The deserialize step runs after signing, just before the request is sent.
    client.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { body: string; headers: Record<string, string> };
        request.body = `${request.body}&AutoScalingGroupNames.member.1=web`;
        request.headers['content-length'] = String(Buffer.byteLength(request.body));
        return next(args);
      },
      { step: 'deserialize', priority: 'low' },
    );

    const answer = await describeGroups(client);

    expect(answer).toMatchObject({ name: 'SignatureDoesNotMatch', status: 403 });
    expect(answer.message).toContain(MISMATCH);
  });

  it('accepts a signature scoped to autoscaling in the region, refuses one scoped to another service or region', async () => {
    const right = await signedQuery({ service: 'autoscaling', region: 'us-east-1' });
    const otherService = await signedQuery({ service: 'ssm', region: 'us-east-1' });
    const otherRegion = await signedQuery({ service: 'autoscaling', region: 'eu-west-1' });

    expect(right.status).toBe(200);
    expect(otherService.status).toBe(403);
    expect(otherService.body).toContain(
      '<Code>SignatureDoesNotMatch</Code><Message>Credential should be scoped to correct service: &#39;autoscaling&#39;. </Message>',
    );
    expect(otherRegion.status).toBe(403);
    expect(otherRegion.body).toContain('<Code>SignatureDoesNotMatch</Code>');
  });

  it('refuses a signature made more than 15 minutes ago, with AWS message', async () => {
    const twentyMinutesAgo = { systemClockOffset: -20 * 60 * 1000 };

    const query = await describeGroups(new AutoScalingClient(config(twentyMinutesAgo)));
    const json = await describeInstances(new SSMClient(config(twentyMinutesAgo)));

    expect(query).toMatchObject({ name: 'SignatureDoesNotMatch', status: 403 });
    expect(query.message).toMatch(
      /^Signature expired: \d{8}T\d{6}Z is now earlier than \d{8}T\d{6}Z \(\d{8}T\d{6}Z - 15 min\.\)$/,
    );
    expect(json).toMatchObject({ name: 'InvalidSignatureException', status: 400 });
    expect(
      await describeGroups(new AutoScalingClient(config({ systemClockOffset: -10 * 60 * 1000 }))),
    ).toMatchObject({
      name: 'ok',
    });
  });

  it('accepts the AWS CLI and boto3 signing with the control plane credentials, and refuses them with others', async () => {
    // Child processes, not sync ones: the control plane answering them runs in this process.
    const run = promisify(execFile);
    const env = {
      ...process.env,
      ...plane.env(),
      AWS_CONFIG_FILE: '/dev/null',
      AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
    };
    const cli = async (extra: Record<string, string> = {}) => {
      try {
        const args = ['--endpoint-url', plane.endpoint, 'autoscaling', 'describe-auto-scaling-groups'];
        const query = ['--query', 'AutoScalingGroups[].AutoScalingGroupName', '--output', 'text'];
        const { stdout } = await run('aws', [...args, ...query], { env: { ...env, ...extra } });
        return stdout.trim();
      } catch (error) {
        return String((error as { stderr: string }).stderr).trim();
      }
    };
    const boto3 = await run(
      'python3',
      [
        '-c',
        'import boto3,sys; print(len(boto3.client("ssm", endpoint_url=sys.argv[1]).describe_instance_information()["InstanceInformationList"]))',
        plane.endpoint,
      ],
      { env },
    );

    expect(await cli()).toBe('web');
    expect(boto3.stdout.trim()).toBe('0');
    expect(await cli({ AWS_SECRET_ACCESS_KEY: 'y'.repeat(40) })).toContain('(SignatureDoesNotMatch)');
  });

  it('checks EC2 and Lambda requests too, each answering in its own protocol’s codes and status', async () => {
    const unknown = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE' };
    const wrong = { secretAccessKey: 'x'.repeat(40) };
    const tenMinutesAgo = { systemClockOffset: -10 * 60 * 1000 };
    const unsigned = await fetch(`${plane.endpoint}/2015-03-31/functions/nobody/invocations`, {
      method: 'POST',
      body: '{}',
    });

    expect(await describeTags(new EC2Client(config()))).toEqual({ name: 'ok', message: '0' });
    expect(await describeTags(new EC2Client(config(tenMinutesAgo)))).toEqual({ name: 'ok', message: '0' });
    expect(await describeTags(new EC2Client(config(unknown)))).toEqual({
      name: 'AuthFailure',
      status: 401,
      message: 'AWS was not able to validate the provided access credentials',
    });
    expect(await describeTags(new EC2Client(config(wrong)))).toMatchObject({
      name: 'SignatureDoesNotMatch',
      status: 403,
    });
    // The path holds an ARN (colons, a dollar sign): signed and checked as the SDK encodes it.
    expect(await invokeByArn(new LambdaClient(config()))).toMatchObject({
      name: 'ResourceNotFoundException',
      status: 404,
    });
    expect(await invokeByArn(new LambdaClient(config(unknown)))).toEqual({
      name: 'UnrecognizedClientException',
      status: 403,
      message: 'The security token included in the request is invalid.',
    });
    expect(await invokeByArn(new LambdaClient(config(wrong)))).toMatchObject({
      name: 'InvalidSignatureException',
      status: 403,
    });
    expect(unsigned.status).toBe(403);
    expect(unsigned.headers.get('x-amzn-errortype')).toBe('MissingAuthenticationTokenException');
  });
});
