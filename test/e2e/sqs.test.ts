import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ChangeMessageVisibilityCommand,
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  ListQueuesCommand,
  PurgeQueueCommand,
  type QueueAttributeName,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { ControlPlane, type ControlPlaneOptions } from '../../scripts/local/control-plane/control-plane';
import { FIDELITY } from '../../scripts/local/fidelity';

// The real SQS client against the control plane's SQS (awsJson1_0, SigV4 for service sqs).
jest.setTimeout(60_000);

let plane: ControlPlane;
let sqs: SQSClient;

async function world(options: ControlPlaneOptions = {}): Promise<void> {
  plane = await ControlPlane.start({ timeScale: 20, duplicateDeliveries: { rate: 0 }, ...options });
  const env = plane.env();
  sqs = new SQSClient({
    endpoint: env.AWS_ENDPOINT_URL_SQS,
    region: plane.region,
    credentials: {
      accessKeyId: plane.credentials.accessKeyId,
      secretAccessKey: plane.credentials.secretAccessKey,
    },
    maxAttempts: 1,
  });
}

afterEach(async () => {
  sqs?.destroy();
  await plane?.close();
});

async function queue(name: string, Attributes: Record<string, string> = {}): Promise<string> {
  return (await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes }))).QueueUrl as string;
}

async function counts(QueueUrl: string) {
  const { Attributes = {} } = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['All'] }),
  );
  return {
    visible: Number(Attributes.ApproximateNumberOfMessages),
    notVisible: Number(Attributes.ApproximateNumberOfMessagesNotVisible),
    delayed: Number(Attributes.ApproximateNumberOfMessagesDelayed),
  };
}

describe('SQS over the real wire', () => {
  it('holds a message back for its DelaySeconds, on the simulated clock', async () => {
    await world();
    const QueueUrl = await queue('delayed');
    const sent = await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'later', DelaySeconds: 10 }));
    expect(await counts(QueueUrl)).toEqual({ visible: 0, notVisible: 0, delayed: 1 });
    expect((await sqs.send(new ReceiveMessageCommand({ QueueUrl }))).Messages ?? []).toEqual([]);
    const started = Date.now();
    // A long poll (20 simulated s = 1 real s) returns as soon as the delay (10 s = 0.5 s) ends.
    const { Messages = [] } = await sqs.send(new ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 20 }));
    expect(Messages.map((m) => [m.MessageId, m.Body])).toEqual([[sent.MessageId, 'later']]);
    expect(Date.now() - started).toBeLessThan(950);
  });

  it('hides a received message for the visibility timeout, then delivers it again with a new receipt handle', async () => {
    await world();
    const QueueUrl = await queue('visible', { VisibilityTimeout: '10' });
    await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'work' }));
    const receive = () =>
      sqs.send(
        new ReceiveMessageCommand({ QueueUrl, WaitTimeSeconds: 20, MessageSystemAttributeNames: ['All'] }),
      );
    const [first] = (await receive()).Messages ?? [];
    expect(await counts(QueueUrl)).toEqual({ visible: 0, notVisible: 1, delayed: 0 });
    const [second] = (await receive()).Messages ?? [];
    expect(second?.MessageId).toBe(first?.MessageId);
    expect(second?.ReceiptHandle).not.toBe(first?.ReceiptHandle);
    expect(second?.Attributes?.ApproximateReceiveCount).toBe('2');
    // The old handle no longer deletes: the message stays, as AWS documents for a stale handle.
    await sqs.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: first?.ReceiptHandle }));
    expect(await counts(QueueUrl)).toEqual({ visible: 0, notVisible: 1, delayed: 0 });
    await sqs.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl,
        ReceiptHandle: second?.ReceiptHandle,
        VisibilityTimeout: 0,
      }),
    );
    const [third] = (await receive()).Messages ?? [];
    await sqs.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: third?.ReceiptHandle }));
    expect(await counts(QueueUrl)).toEqual({ visible: 0, notVisible: 0, delayed: 0 });
  });

  it('delivers a message twice at the configured duplicate rate: a second receive while the first is in flight', async () => {
    await world({ duplicateDeliveries: { rate: 1, seed: 7 } });
    const QueueUrl = await queue('twice', { VisibilityTimeout: '600' });
    const { MessageId } = await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'once' }));
    const first = (await sqs.send(new ReceiveMessageCommand({ QueueUrl }))).Messages ?? [];
    await sqs.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: first[0]?.ReceiptHandle }));
    const second = (await sqs.send(new ReceiveMessageCommand({ QueueUrl }))).Messages ?? [];
    expect(first.map((m) => m.MessageId)).toEqual([MessageId]);
    expect(second.map((m) => m.MessageId)).toEqual([MessageId]);
    expect(second[0]?.ReceiptHandle).not.toBe(first[0]?.ReceiptHandle);
  });

  it('moves a message to the dead-letter queue when its receive count passes maxReceiveCount', async () => {
    await world();
    const dlq = await queue('dead');
    const { Attributes } = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: dlq, AttributeNames: ['QueueArn'] }),
    );
    const QueueUrl = await queue('redriven', {
      VisibilityTimeout: '0',
      RedrivePolicy: JSON.stringify({ deadLetterTargetArn: Attributes?.QueueArn, maxReceiveCount: 3 }),
    });
    const { MessageId } = await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'poison' }));
    const receives: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { Messages = [] } = await sqs.send(
        new ReceiveMessageCommand({ QueueUrl, MessageSystemAttributeNames: ['ApproximateReceiveCount'] }),
      );
      receives.push(...Messages.map((m) => m.Attributes?.ApproximateReceiveCount ?? '?'));
    }
    expect(receives).toEqual(['1', '2', '3']);
    expect(await counts(QueueUrl)).toEqual({ visible: 0, notVisible: 0, delayed: 0 });
    const dead = (await sqs.send(new ReceiveMessageCommand({ QueueUrl: dlq }))).Messages ?? [];
    expect(dead.map((m) => [m.MessageId, m.Body])).toEqual([[MessageId, 'poison']]);
  });

  it('answers bad requests with the codes and messages AWS answers, batch entries one by one', async () => {
    await world();
    const QueueUrl = await queue('errors');
    const code = (promise: Promise<unknown>) =>
      promise.then(
        () => 'no error',
        (error: { name: string; message: string }) => `${error.name}: ${error.message}`,
      );
    expect(
      await code(sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'x', DelaySeconds: 901 }))),
    ).toBe(
      'InvalidParameterValue: Value 901 for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= 900.',
    );
    expect(
      await code(sqs.send(new SendMessageCommand({ QueueUrl: `${QueueUrl}-gone`, MessageBody: 'x' }))),
    ).toBe('QueueDoesNotExist: The specified queue does not exist.');
    expect(await code(sqs.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: 'made-up' })))).toBe(
      'ReceiptHandleIsInvalid: The input receipt handle "made-up" is not a valid receipt handle.',
    );
    const eleven = Array.from({ length: 11 }, (_, i) => ({ Id: `m${i}`, MessageBody: 'x' }));
    expect(await code(sqs.send(new SendMessageBatchCommand({ QueueUrl, Entries: eleven })))).toBe(
      'TooManyEntriesInBatchRequest: Maximum number of entries per request are 10. You have sent 11.',
    );
    const batch = await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl,
        Entries: [
          { Id: 'ok', MessageBody: 'x' },
          { Id: 'late', MessageBody: 'x', DelaySeconds: 1000 },
        ],
      }),
    );
    expect(batch.Successful?.map((e) => e.Id)).toEqual(['ok']);
    expect(batch.Failed).toEqual([
      expect.objectContaining({ Id: 'late', Code: 'InvalidParameterValue', SenderFault: true }),
    ]);
    expect(
      await code(sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'x'.repeat(262_145) }))),
    ).toMatch(/^InvalidParameterValue: .*Message must be shorter than 262144 bytes/);
    await sqs.send(new PurgeQueueCommand({ QueueUrl }));
    expect(await code(sqs.send(new PurgeQueueCommand({ QueueUrl })))).toMatch(/^PurgeQueueInProgress: /);

    await sqs.send(
      new SendMessageBatchCommand({
        QueueUrl,
        Entries: [
          { Id: 'a', MessageBody: 'a' },
          { Id: 'b', MessageBody: 'b' },
        ],
      }),
    );
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 10 }),
    );
    const deleted = await sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl,
        Entries: [
          ...Messages.map((m, i) => ({ Id: `m${i}`, ReceiptHandle: m.ReceiptHandle })),
          { Id: 'bogus', ReceiptHandle: 'made-up' },
        ],
      }),
    );
    expect(deleted.Successful?.map((e) => e.Id)).toEqual(['m0', 'm1']);
    expect(deleted.Failed).toEqual([
      expect.objectContaining({ Id: 'bogus', Code: 'ReceiptHandleIsInvalid' }),
    ]);
    expect(await counts(QueueUrl)).toEqual({ visible: 0, notVisible: 0, delayed: 0 });
  });

  it('drops a message once the retention period has passed', async () => {
    await world();
    const QueueUrl = await queue('retained', { MessageRetentionPeriod: '60' });
    await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'old' }));
    expect(await counts(QueueUrl)).toEqual({ visible: 1, notVisible: 0, delayed: 0 });
    await plane.clock.sleep(61);
    expect(await counts(QueueUrl)).toEqual({ visible: 0, notVisible: 0, delayed: 0 });
    expect((await sqs.send(new ReceiveMessageCommand({ QueueUrl }))).Messages ?? []).toEqual([]);
  });

  it('provokes every error code the SQS rows of the fidelity table list, named so by the SDK', async () => {
    await world();
    const QueueUrl = await queue('conformance');
    const client = (secretAccessKey: string, accessKeyId = plane.credentials.accessKeyId) =>
      new SQSClient({
        endpoint: plane.endpoint,
        region: plane.region,
        credentials: { accessKeyId, secretAccessKey },
        maxAttempts: 1,
      });
    /** A request the SDK cannot make: unsigned, or with a malformed Authorization header. */
    const raw = async (authorization?: string) => {
      const response = await fetch(plane.endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-amz-json-1.0',
          'x-amz-target': 'AmazonSQS.GetQueueUrl',
          ...(authorization ? { authorization } : {}),
        },
        body: JSON.stringify({ QueueName: 'conformance' }),
      });
      const body = (await response.json()) as { __type: string };
      // What the SDK names the error: the x-amzn-query-error code, else the __type's shape.
      const header = response.headers.get('x-amzn-query-error');
      throw { name: header ? header.split(';')[0] : body.__type.split('#')[1] };
    };
    const entries = (count: number, body = 'x') =>
      Array.from({ length: count }, (_, i) => ({ Id: `m${i}`, MessageBody: body }));
    const inFlightNoMore = async () => {
      await sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'x' }));
      const [m] =
        (await sqs.send(new ReceiveMessageCommand({ QueueUrl, VisibilityTimeout: 0 }))).Messages ?? [];
      return sqs.send(
        new ChangeMessageVisibilityCommand({
          QueueUrl,
          ReceiptHandle: m?.ReceiptHandle,
          VisibilityTimeout: 5,
        }),
      );
    };
    const cases: Record<string, () => Promise<unknown>> = {
      'request signing MissingAuthenticationTokenException': () => raw(),
      'request signing IncompleteSignatureException': () => raw('AWS4-HMAC-SHA256 Credential=x'),
      'request signing UnrecognizedClientException': () =>
        client('x'.repeat(40), 'AKIAUNKNOWNUNKNOWN00').send(
          new GetQueueUrlCommand({ QueueName: 'conformance' }),
        ),
      'request signing InvalidSignatureException': () =>
        client('x'.repeat(40)).send(new GetQueueUrlCommand({ QueueName: 'conformance' })),
      'CreateQueue / GetQueueUrl / GetQueueAttributes / SetQueueAttributes QueueNameExists': () =>
        sqs.send(
          new CreateQueueCommand({ QueueName: 'conformance', Attributes: { VisibilityTimeout: '5' } }),
        ),
      'CreateQueue / GetQueueUrl / GetQueueAttributes / SetQueueAttributes QueueDoesNotExist': () =>
        sqs.send(new GetQueueUrlCommand({ QueueName: 'nowhere' })),
      'CreateQueue / GetQueueUrl / GetQueueAttributes / SetQueueAttributes InvalidAttributeName': () =>
        sqs.send(
          new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ['Bogus' as QueueAttributeName] }),
        ),
      'CreateQueue / GetQueueUrl / GetQueueAttributes / SetQueueAttributes InvalidParameterValue': () =>
        sqs.send(new CreateQueueCommand({ QueueName: 'not.a.name' })),
      'CreateQueue / GetQueueUrl / GetQueueAttributes / SetQueueAttributes MissingParameter': () =>
        sqs.send(new GetQueueUrlCommand({ QueueName: '' })),
      'SendMessage / SendMessageBatch InvalidParameterValue': () =>
        sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'x', DelaySeconds: 901 })),
      'SendMessage / SendMessageBatch InvalidMessageContents': () =>
        sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: 'nul \u0000' })),
      'SendMessage / SendMessageBatch MissingParameter': () =>
        sqs.send(new SendMessageCommand({ QueueUrl, MessageBody: '' })),
      'SendMessage / SendMessageBatch EmptyBatchRequest': () =>
        sqs.send(new SendMessageBatchCommand({ QueueUrl, Entries: [] })),
      'SendMessage / SendMessageBatch TooManyEntriesInBatchRequest': () =>
        sqs.send(new SendMessageBatchCommand({ QueueUrl, Entries: entries(11) })),
      'SendMessage / SendMessageBatch BatchEntryIdsNotDistinct': () =>
        sqs.send(
          new SendMessageBatchCommand({ QueueUrl, Entries: entries(2).map((e) => ({ ...e, Id: 'same' })) }),
        ),
      'SendMessage / SendMessageBatch InvalidBatchEntryId': () =>
        sqs.send(new SendMessageBatchCommand({ QueueUrl, Entries: [{ Id: 'a.b', MessageBody: 'x' }] })),
      'SendMessage / SendMessageBatch BatchRequestTooLong': () =>
        sqs.send(new SendMessageBatchCommand({ QueueUrl, Entries: entries(2, 'x'.repeat(200_000)) })),
      'ReceiveMessage InvalidParameterValue': () =>
        sqs.send(new ReceiveMessageCommand({ QueueUrl, MaxNumberOfMessages: 11 })),
      'DeleteMessage / DeleteMessageBatch / ChangeMessageVisibility / ChangeMessageVisibilityBatch / PurgeQueue ReceiptHandleIsInvalid':
        () => sqs.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: 'made-up' })),
      'DeleteMessage / DeleteMessageBatch / ChangeMessageVisibility / ChangeMessageVisibilityBatch / PurgeQueue MessageNotInflight':
        inFlightNoMore,
      'DeleteMessage / DeleteMessageBatch / ChangeMessageVisibility / ChangeMessageVisibilityBatch / PurgeQueue PurgeQueueInProgress':
        async () => {
          await sqs.send(new PurgeQueueCommand({ QueueUrl }));
          return sqs.send(new PurgeQueueCommand({ QueueUrl }));
        },
      'any other operation UnknownOperationException': () => sqs.send(new ListQueuesCommand({})),
    };
    const listed = FIDELITY.filter((row) => row.service === 'SQS').flatMap((row) =>
      row.errorCodes.map((code) => `${row.operation} ${code}`),
    );
    expect(Object.keys(cases).sort()).toEqual([...listed].sort());
    const wrong: string[] = [];
    for (const [key, provoke] of Object.entries(cases)) {
      const expected = key.slice(key.lastIndexOf(' ') + 1);
      const answered = await provoke().then(
        () => 'no error',
        (error: { name: string }) => error.name,
      );
      if (answered !== expected) wrong.push(`${key}: ${answered}`);
    }
    expect(wrong).toEqual([]);
  });

  it('names every operation sqs-protocol.ts serves in the fidelity table', () => {
    const source = readFileSync(
      join(__dirname, '..', '..', 'scripts', 'local', 'control-plane', 'sqs-protocol.ts'),
      'utf8',
    );
    const dispatcher = source.slice(source.indexOf('export async function runSqs'));
    const served = [
      ...dispatcher.slice(0, dispatcher.indexOf('    default:')).matchAll(/^ {4}case '([A-Za-z]+)':/gm),
    ].map((m) => m[1]);
    const named = FIDELITY.filter((row) => row.service === 'SQS').flatMap((row) =>
      row.operation.split(' / '),
    );
    expect(served).toContain('ReceiveMessage');
    expect(served.filter((operation) => !named.includes(operation as string))).toEqual([]);
  });
});
