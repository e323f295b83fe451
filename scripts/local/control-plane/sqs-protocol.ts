import { ApiError } from './api-error';
import {
  type MessageAttribute,
  QUEUE_LIMITS,
  type Queue,
  type QueueSettings,
  type ReceivedMessage,
  type Sqs,
} from './sqs';

/** An awsJson1_0 request body as the SDK sends it. */
export type SqsInput = Readonly<Record<string, unknown>>;

/**
 * How SQS's JSON protocol answers each error code: the body's `__type` and the
 * `x-amzn-query-error` header (the awsQuery code SDKs of the query era knew, which the
 * current SDK reads to name the error). Codes not listed answer `com.amazon.coral.service#<code>`
 * without the header.
 */
const ERROR_SHAPES: Readonly<Record<string, { type: string; query: string }>> = {
  QueueDoesNotExist: {
    type: 'com.amazonaws.sqs#QueueDoesNotExist',
    query: 'AWS.SimpleQueueService.NonExistentQueue',
  },
  QueueNameExists: { type: 'com.amazonaws.sqs#QueueNameExists', query: 'QueueAlreadyExists' },
  InvalidParameterValue: {
    type: 'com.amazon.coral.service#InvalidParameterValueException',
    query: 'InvalidParameterValue',
  },
  MissingParameter: { type: 'com.amazon.coral.service#MissingParameterException', query: 'MissingParameter' },
  InvalidAttributeName: { type: 'com.amazonaws.sqs#InvalidAttributeName', query: 'InvalidAttributeName' },
  InvalidMessageContents: {
    type: 'com.amazonaws.sqs#InvalidMessageContents',
    query: 'InvalidMessageContents',
  },
  ReceiptHandleIsInvalid: {
    type: 'com.amazonaws.sqs#ReceiptHandleIsInvalid',
    query: 'ReceiptHandleIsInvalid',
  },
  MessageNotInflight: {
    type: 'com.amazonaws.sqs#MessageNotInflight',
    query: 'AWS.SimpleQueueService.MessageNotInflight',
  },
  PurgeQueueInProgress: {
    type: 'com.amazonaws.sqs#PurgeQueueInProgress',
    query: 'AWS.SimpleQueueService.PurgeQueueInProgress',
  },
  TooManyEntriesInBatchRequest: {
    type: 'com.amazonaws.sqs#TooManyEntriesInBatchRequest',
    query: 'AWS.SimpleQueueService.TooManyEntriesInBatchRequest',
  },
  BatchEntryIdsNotDistinct: {
    type: 'com.amazonaws.sqs#BatchEntryIdsNotDistinct',
    query: 'AWS.SimpleQueueService.BatchEntryIdsNotDistinct',
  },
  EmptyBatchRequest: {
    type: 'com.amazonaws.sqs#EmptyBatchRequest',
    query: 'AWS.SimpleQueueService.EmptyBatchRequest',
  },
  InvalidBatchEntryId: {
    type: 'com.amazonaws.sqs#InvalidBatchEntryId',
    query: 'AWS.SimpleQueueService.InvalidBatchEntryId',
  },
  BatchRequestTooLong: {
    type: 'com.amazonaws.sqs#BatchRequestTooLong',
    query: 'AWS.SimpleQueueService.BatchRequestTooLong',
  },
  RequestThrottled: { type: 'com.amazonaws.sqs#RequestThrottled', query: 'RequestThrottled' },
  AccessDenied: { type: 'com.amazon.coral.service#AccessDeniedException', query: 'AccessDenied' },
};

/** The status, headers and body SQS answers an error with. */
export function sqsError(error: ApiError): { headers: Record<string, string>; body: string } {
  const shape = ERROR_SHAPES[error.code];
  return {
    headers: shape ? { 'x-amzn-query-error': `${shape.query};${error.fault}` } : {},
    body: JSON.stringify({
      __type: shape?.type ?? `com.amazon.coral.service#${error.code}`,
      ...(error.message ? { message: error.message } : {}),
    }),
  };
}

const MAX_BATCH = 10;
const BATCH_ID = /^[A-Za-z0-9_-]{1,80}$/;
const QUEUE_NAME = /^[A-Za-z0-9_-]{1,80}$/;
/** Characters SQS accepts in a message: #x9 #xA #xD, #x20–#xD7FF, #xE000–#xFFFD, #x10000–#x10FFFF. */
const INVALID_CHARACTER = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;
const SYSTEM_ATTRIBUTES = [
  'ApproximateReceiveCount',
  'ApproximateFirstReceiveTimestamp',
  'SentTimestamp',
  'SenderId',
] as const;
const QUEUE_ATTRIBUTES = [
  'QueueArn',
  'ApproximateNumberOfMessages',
  'ApproximateNumberOfMessagesNotVisible',
  'ApproximateNumberOfMessagesDelayed',
  'CreatedTimestamp',
  'LastModifiedTimestamp',
  'VisibilityTimeout',
  'DelaySeconds',
  'MessageRetentionPeriod',
  'MaximumMessageSize',
  'ReceiveMessageWaitTimeSeconds',
  'RedrivePolicy',
] as const;

/** Runs one SQS operation (`X-Amz-Target: AmazonSQS.<operation>`); resolves to the reply body. */
export async function runSqs(model: Sqs, operation: string, input: SqsInput): Promise<unknown> {
  switch (operation) {
    case 'CreateQueue': {
      const name = required(input, 'QueueName');
      if (!QUEUE_NAME.test(name)) {
        throw invalid('Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length');
      }
      return { QueueUrl: model.createQueue(name, queueSettings(model, input.Attributes)).url };
    }
    case 'GetQueueUrl':
      return { QueueUrl: model.queue(required(input, 'QueueName')).url };
    case 'GetQueueAttributes': {
      const queue = queueOf(model, input);
      const names = stringList(input.AttributeNames);
      const unknown = names.filter(
        (n) => n !== 'All' && !(QUEUE_ATTRIBUTES as readonly string[]).includes(n),
      );
      if (unknown.length > 0) throw new ApiError('InvalidAttributeName', `Unknown Attribute ${unknown[0]}.`);
      const all = queueAttributes(queue);
      const wanted = names.includes('All') ? Object.keys(all) : names;
      const Attributes = Object.fromEntries(
        wanted.filter((n) => all[n] !== undefined).map((n) => [n, all[n] as string]),
      );
      return Object.keys(Attributes).length > 0 ? { Attributes } : {};
    }
    case 'SetQueueAttributes': {
      const queue = queueOf(model, input);
      queue.settings = { ...queue.settings, ...queueSettings(model, input.Attributes) };
      queue.modifiedAt = Date.now();
      return {};
    }
    case 'SendMessage': {
      return send(queueOf(model, input), input);
    }
    case 'SendMessageBatch': {
      const queue = queueOf(model, input);
      const entries = batchEntries(input, 'SendMessageBatchRequestEntry');
      const bytes = entries.reduce((sum, e) => sum + Buffer.byteLength(String(e.MessageBody ?? '')), 0);
      if (bytes > QUEUE_LIMITS.MaximumMessageSize.max) {
        throw new ApiError(
          'BatchRequestTooLong',
          `Batch requests cannot be longer than ${QUEUE_LIMITS.MaximumMessageSize.max} bytes. You have sent ${bytes} bytes.`,
        );
      }
      return perEntry(entries, (entry) => send(queue, entry));
    }
    case 'ReceiveMessage': {
      const queue = queueOf(model, input);
      const max = bounded(input, 'MaxNumberOfMessages', 1, 10, 'Must be between 1 and 10, if provided.') ?? 1;
      const wait =
        bounded(input, 'WaitTimeSeconds', 0, 20, 'Must be >= 0 and <= 20, if provided.') ??
        queue.settings.ReceiveMessageWaitTimeSeconds;
      const visibility = visibilityTimeout(input) ?? queue.settings.VisibilityTimeout;
      const system = [...stringList(input.AttributeNames), ...stringList(input.MessageSystemAttributeNames)];
      const custom = stringList(input.MessageAttributeNames);
      const messages = await queue.receive(max, visibility, wait);
      return { Messages: messages.map((m) => messageJson(m, system, custom)) };
    }
    case 'DeleteMessage': {
      const queue = queueOf(model, input);
      deleteMessage(queue, required(input, 'ReceiptHandle'));
      return {};
    }
    case 'DeleteMessageBatch': {
      const queue = queueOf(model, input);
      return perEntry(batchEntries(input, 'DeleteMessageBatchRequestEntry'), (entry) => {
        deleteMessage(queue, required(entry, 'ReceiptHandle'));
        return {};
      });
    }
    case 'ChangeMessageVisibility': {
      const queue = queueOf(model, input);
      changeVisibility(queue, input);
      return {};
    }
    case 'ChangeMessageVisibilityBatch': {
      const queue = queueOf(model, input);
      return perEntry(batchEntries(input, 'ChangeMessageVisibilityBatchRequestEntry'), (entry) => {
        changeVisibility(queue, entry);
        return {};
      });
    }
    case 'PurgeQueue':
      queueOf(model, input).purge();
      return {};
    default:
      throw new ApiError('UnknownOperationException', '');
  }
}

function queueOf(model: Sqs, input: SqsInput): Queue {
  return model.queueByUrl(required(input, 'QueueUrl'));
}

/** Sends one message (SendMessage, or one entry of a batch) and answers as SQS does. */
function send(queue: Queue, input: SqsInput) {
  const body = typeof input.MessageBody === 'string' ? input.MessageBody : '';
  if (body === '')
    throw new ApiError('MissingParameter', 'The request must contain the parameter MessageBody.');
  if (INVALID_CHARACTER.test(body)) {
    throw new ApiError(
      'InvalidMessageContents',
      'Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF',
    );
  }
  const attributes = messageAttributes(input.MessageAttributes);
  const size =
    Buffer.byteLength(body) +
    Object.entries(attributes).reduce(
      (sum, [name, a]) =>
        sum +
        Buffer.byteLength(name) +
        Buffer.byteLength(a.DataType) +
        (a.BinaryValue?.length ?? Buffer.byteLength(a.StringValue ?? '')),
      0,
    );
  if (size > queue.settings.MaximumMessageSize) {
    throw invalid(
      `One or more parameters are invalid. Reason: Message must be shorter than ${queue.settings.MaximumMessageSize} bytes.`,
    );
  }
  const delay = bounded(input, 'DelaySeconds', 0, 900, 'DelaySeconds must be >= 0 and <= 900.');
  const sent = queue.send(body, attributes, delay);
  return {
    MessageId: sent.id,
    MD5OfMessageBody: sent.md5OfBody,
    ...(sent.md5OfMessageAttributes ? { MD5OfMessageAttributes: sent.md5OfMessageAttributes } : {}),
  };
}

function deleteMessage(queue: Queue, handle: string): void {
  // A stale handle (the message was received again since) succeeds and deletes nothing, as AWS documents.
  if (!queue.delete(handle) && !queue.issued(handle)) {
    throw new ApiError(
      'ReceiptHandleIsInvalid',
      `The input receipt handle "${handle}" is not a valid receipt handle.`,
      404,
    );
  }
}

function changeVisibility(queue: Queue, input: SqsInput): void {
  const handle = required(input, 'ReceiptHandle');
  const seconds = visibilityTimeout(input);
  if (seconds === undefined) {
    throw new ApiError('MissingParameter', 'The request must contain the parameter VisibilityTimeout.');
  }
  if (!queue.issued(handle)) {
    throw new ApiError(
      'ReceiptHandleIsInvalid',
      `The input receipt handle "${handle}" is not a valid receipt handle.`,
      404,
    );
  }
  queue.changeVisibility(handle, seconds);
}

function visibilityTimeout(input: SqsInput): number | undefined {
  return bounded(input, 'VisibilityTimeout', 0, 43_200, 'Must be >= 0 and <= 43200, if provided.');
}

/** The entries of a batch call, checked as SQS checks them before any entry runs. */
function batchEntries(input: SqsInput, entryName: string): SqsInput[] {
  const entries = Array.isArray(input.Entries) ? (input.Entries as SqsInput[]) : [];
  if (entries.length === 0) {
    throw new ApiError('EmptyBatchRequest', `There should be at least one ${entryName} in the request.`);
  }
  if (entries.length > MAX_BATCH) {
    throw new ApiError(
      'TooManyEntriesInBatchRequest',
      `Maximum number of entries per request are ${MAX_BATCH}. You have sent ${entries.length}.`,
    );
  }
  const seen = new Set<string>();
  for (const entry of entries) {
    const id = String(entry.Id ?? '');
    if (!BATCH_ID.test(id)) {
      throw new ApiError(
        'InvalidBatchEntryId',
        'A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.',
      );
    }
    if (seen.has(id)) throw new ApiError('BatchEntryIdsNotDistinct', `Id ${id} repeated.`);
    seen.add(id);
  }
  return entries;
}

/** Runs each entry on its own: a failing entry is reported in Failed, the others still run. */
function perEntry(entries: readonly SqsInput[], run: (entry: SqsInput) => Record<string, unknown>) {
  const Successful: Record<string, unknown>[] = [];
  const Failed: Record<string, unknown>[] = [];
  for (const entry of entries) {
    try {
      Successful.push({ Id: entry.Id, ...run(entry) });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      Failed.push({
        Id: entry.Id,
        SenderFault: error.fault === 'Sender',
        Code: error.code,
        Message: error.message,
      });
    }
  }
  return { Successful, Failed };
}

function queueSettings(model: Sqs, raw: unknown): Partial<QueueSettings> {
  if (raw === undefined) return {};
  const attributes = raw as Record<string, unknown>;
  const settings: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(attributes)) {
    if (name === 'RedrivePolicy') {
      settings.RedrivePolicy = redrivePolicy(model, String(value));
      continue;
    }
    const limits = QUEUE_LIMITS[name as keyof typeof QUEUE_LIMITS];
    if (!limits) throw new ApiError('InvalidAttributeName', `Unknown Attribute ${name}.`);
    const number = Number(value);
    if (!Number.isInteger(number) || number < limits.min || number > limits.max) {
      throw invalid(`Invalid value for the parameter ${name}.`);
    }
    settings[name] = number;
  }
  return settings as Partial<QueueSettings>;
}

function redrivePolicy(model: Sqs, value: string): QueueSettings['RedrivePolicy'] {
  const bad = (reason: string) =>
    invalid(`Value ${value} for parameter RedrivePolicy is invalid. Reason: ${reason}`);
  let parsed: { deadLetterTargetArn?: unknown; maxReceiveCount?: unknown };
  try {
    parsed = JSON.parse(value);
  } catch {
    throw bad('Invalid JSON.');
  }
  const count = Number(parsed.maxReceiveCount);
  if (typeof parsed.deadLetterTargetArn !== 'string')
    throw bad('Redrive policy does not contain mandatory attribute: deadLetterTargetArn.');
  if (!Number.isInteger(count) || count < 1 || count > 1000)
    throw bad('Invalid value for maxReceiveCount: must be between 1 and 1000.');
  if (!model.queueByArn(parsed.deadLetterTargetArn)) throw bad('Dead letter target does not exist.');
  return { deadLetterTargetArn: parsed.deadLetterTargetArn, maxReceiveCount: count };
}

function queueAttributes(queue: Queue): Record<string, string | undefined> {
  const counts = queue.counts();
  const s = queue.settings;
  return {
    QueueArn: queue.arn,
    ApproximateNumberOfMessages: String(counts.visible),
    ApproximateNumberOfMessagesNotVisible: String(counts.notVisible),
    ApproximateNumberOfMessagesDelayed: String(counts.delayed),
    CreatedTimestamp: String(Math.floor(queue.createdAt / 1000)),
    LastModifiedTimestamp: String(Math.floor(queue.modifiedAt / 1000)),
    VisibilityTimeout: String(s.VisibilityTimeout),
    DelaySeconds: String(s.DelaySeconds),
    MessageRetentionPeriod: String(s.MessageRetentionPeriod),
    MaximumMessageSize: String(s.MaximumMessageSize),
    ReceiveMessageWaitTimeSeconds: String(s.ReceiveMessageWaitTimeSeconds),
    RedrivePolicy: s.RedrivePolicy ? JSON.stringify(s.RedrivePolicy) : undefined,
  };
}

function messageJson(m: ReceivedMessage, system: readonly string[], custom: readonly string[]) {
  const all = system.includes('All');
  const Attributes = Object.fromEntries(
    SYSTEM_ATTRIBUTES.filter((name) => all || system.includes(name)).map((name) => [
      name,
      m.attributes[name],
    ]),
  );
  const everyCustom = custom.includes('All') || custom.includes('.*');
  const chosen = Object.entries(m.messageAttributes).filter(
    ([name]) =>
      everyCustom || custom.some((c) => c === name || (c.endsWith('.*') && name.startsWith(c.slice(0, -1)))),
  );
  return {
    MessageId: m.messageId,
    ReceiptHandle: m.receiptHandle,
    MD5OfBody: m.md5OfBody,
    Body: m.body,
    ...(Object.keys(Attributes).length > 0 ? { Attributes } : {}),
    ...(chosen.length > 0
      ? {
          MD5OfMessageAttributes: m.md5OfMessageAttributes,
          MessageAttributes: Object.fromEntries(
            chosen.map(([name, a]) => [
              name,
              {
                DataType: a.DataType,
                ...(a.StringValue !== undefined ? { StringValue: a.StringValue } : {}),
                ...(a.BinaryValue !== undefined ? { BinaryValue: a.BinaryValue.toString('base64') } : {}),
              },
            ]),
          ),
        }
      : {}),
  };
}

function messageAttributes(raw: unknown): Record<string, MessageAttribute> {
  if (raw === undefined || raw === null) return {};
  return Object.fromEntries(
    Object.entries(raw as Record<string, Record<string, unknown>>).map(([name, a]) => {
      const DataType = String(a.DataType ?? '');
      if (!/^(String|Number|Binary)(\..+)?$/.test(DataType)) {
        throw invalid(
          `The type of message (user) attribute '${name}' is invalid. You must use only the following supported type prefixes: Binary, Number, String.`,
        );
      }
      return [
        name,
        {
          DataType,
          ...(typeof a.StringValue === 'string' ? { StringValue: a.StringValue } : {}),
          ...(typeof a.BinaryValue === 'string' ? { BinaryValue: Buffer.from(a.BinaryValue, 'base64') } : {}),
        },
      ];
    }),
  );
}

function stringList(raw: unknown): string[] {
  return Array.isArray(raw) ? raw.filter((v): v is string => typeof v === 'string') : [];
}

function required(input: SqsInput, name: string): string {
  const value = input[name];
  if (typeof value !== 'string' || value === '') {
    throw new ApiError('MissingParameter', `The request must contain the parameter ${name}.`);
  }
  return value;
}

/** An optional integer member within [min, max]; SQS's InvalidParameterValue otherwise. */
function bounded(
  input: SqsInput,
  name: string,
  min: number,
  max: number,
  reason: string,
): number | undefined {
  const value = input[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(`Value ${String(value)} for parameter ${name} is invalid. Reason: ${reason}`);
  }
  return value;
}

function invalid(message: string): ApiError {
  return new ApiError('InvalidParameterValue', message);
}
