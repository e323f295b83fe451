import { isTerminalStatus } from '../../../functions/shared/event-patterns';
import { ApiError } from './api-error';
import {
  type Command,
  type DocumentVersion,
  type Invocation,
  OUTPUT_LIMITS,
  type SendCommandInput,
  type Ssm,
  type SsmDocument,
  type StoredParameter,
} from './ssm';

/** An awsJson1_1 request body as the SDK sends it. */
export type JsonInput = Readonly<Record<string, unknown>>;

/** Instance ids an SSM request is about, to count calls per instance. */
export function jsonInstanceIds(input: JsonInput, model: Ssm): string[] {
  const ids = Array.isArray(input.InstanceIds)
    ? input.InstanceIds.filter((id) => typeof id === 'string')
    : [];
  if (typeof input.InstanceId === 'string') ids.push(input.InstanceId);
  // DescribeInstanceInformation names its instances in a filter.
  if (Array.isArray(input.Filters)) {
    for (const filter of input.Filters as { Key?: unknown; Values?: unknown }[]) {
      if (filter?.Key === 'InstanceIds' && Array.isArray(filter.Values)) {
        ids.push(...filter.Values.filter((id): id is string => typeof id === 'string'));
      }
    }
  }
  if (ids.length === 0 && typeof input.CommandId === 'string') {
    for (const invocation of model.command(input.CommandId)?.invocations ?? [])
      ids.push(invocation.instanceId);
  }
  return ids;
}

/** Runs one SSM operation (`X-Amz-Target: AmazonSSM.<operation>`); returns the reply body. */
export function runJson(model: Ssm, operation: string, input: JsonInput): unknown {
  switch (operation) {
    case 'SendCommand':
      return { Command: commandJson(model.sendCommand(input as SendCommandInput)) };
    case 'ListCommands': {
      const filters = keyValueFilters(input.Filters, 'key', 'value');
      const commands = model
        .commands()
        .filter((c) => input.CommandId === undefined || c.id === input.CommandId)
        .filter(
          (c) =>
            input.InstanceId === undefined || c.invocations.some((i) => i.instanceId === input.InstanceId),
        )
        .filter((c) => filters.every(([key, value]) => commandFilter(c, key, value)))
        .sort((a, b) => b.requestedAt - a.requestedAt);
      if (typeof input.CommandId === 'string' && commands.length === 0) {
        throw new ApiError('InvalidCommandId', `Command ${input.CommandId} does not exist`);
      }
      const page = paginate(commands, input, 50);
      return { Commands: page.items.map(commandJson), NextToken: page.nextToken };
    }
    case 'ListCommandInvocations': {
      const filters = keyValueFilters(input.Filters, 'key', 'value');
      const rows = model
        .commands()
        .filter((c) => input.CommandId === undefined || c.id === input.CommandId)
        .sort((a, b) => b.requestedAt - a.requestedAt)
        // Right after SendCommand the listing is empty, as AWS's is.
        .flatMap((c) => c.invocations.filter((i) => model.visible(i)).map((i) => [c, i] as const))
        .filter(([, i]) => input.InstanceId === undefined || i.instanceId === input.InstanceId)
        .filter(([c, i]) => filters.every(([key, value]) => invocationFilter(c, i, key, value)));
      const page = paginate(rows, input, 50);
      return {
        CommandInvocations: page.items.map(([c, i]) => invocationJson(c, i, input.Details === true)),
        NextToken: page.nextToken,
      };
    }
    case 'GetCommandInvocation': {
      const commandId = requiredString(input, 'CommandId');
      const invocation = model.invocation(commandId, requiredString(input, 'InstanceId'));
      const command = model.command(commandId) as Command;
      return {
        CommandId: command.id,
        InstanceId: invocation.instanceId,
        Comment: command.comment,
        DocumentName: command.documentName,
        DocumentVersion: command.documentVersion,
        PluginName: typeof input.PluginName === 'string' ? input.PluginName : undefined,
        ResponseCode: invocation.responseCode,
        ExecutionStartDateTime:
          invocation.startedAt === undefined ? '' : new Date(invocation.startedAt).toISOString(),
        ExecutionElapsedTime: elapsed(invocation),
        ExecutionEndDateTime:
          invocation.endedAt === undefined ? '' : new Date(invocation.endedAt).toISOString(),
        Status: invocation.status,
        StatusDetails: invocation.statusDetails,
        StandardOutputContent: invocation.stdout.slice(0, OUTPUT_LIMITS.stdout),
        StandardOutputUrl: '',
        StandardErrorContent: invocation.stderr.slice(0, OUTPUT_LIMITS.stderr),
        StandardErrorUrl: '',
        CloudWatchOutputConfig: { CloudWatchLogGroupName: '', CloudWatchOutputEnabled: false },
      };
    }
    case 'CreateDocument': {
      const type = input.DocumentType ?? 'Command';
      const format = input.DocumentFormat ?? 'JSON';
      if (type !== 'Command' || format !== 'JSON') {
        throw new ApiError(
          'InvalidDocumentContent',
          `The local control plane holds Command documents in JSON only, not ${String(type)} in ${String(format)}`,
        );
      }
      const name = requiredString(input, 'Name');
      const document = model.createDocument(name, requiredString(input, 'Content'));
      return { DocumentDescription: documentDescription(document, document.versions[0] as DocumentVersion) };
    }
    case 'UpdateDocument': {
      const name = requiredString(input, 'Name');
      const version = model.updateDocument(
        name,
        requiredString(input, 'Content'),
        typeof input.DocumentVersion === 'string' ? input.DocumentVersion : undefined,
      );
      return { DocumentDescription: documentDescription(model.document(name), version) };
    }
    case 'UpdateDocumentDefaultVersion': {
      const document = model.setDefaultVersion(
        requiredString(input, 'Name'),
        requiredString(input, 'DocumentVersion'),
      );
      return { Description: { Name: document.name, DefaultVersion: String(document.defaultVersion) } };
    }
    case 'DescribeDocument':
    case 'GetDocument': {
      const name = requiredString(input, 'Name');
      const version = model.documentVersion(
        name,
        typeof input.DocumentVersion === 'string' ? input.DocumentVersion : undefined,
      );
      if (operation === 'DescribeDocument') {
        return { Document: documentDescription(model.document(name), version) };
      }
      return {
        Name: name,
        CreatedDate: version.createdAt / 1000,
        DocumentVersion: String(version.version),
        Status: 'Active',
        Content: version.content,
        DocumentType: 'Command',
        DocumentFormat: 'JSON',
      };
    }
    case 'DescribeInstanceInformation': {
      const filters = [
        ...keyValueFilters(input.InstanceInformationFilterList, 'key', 'valueSet'),
        ...keyValueFilters(input.Filters, 'Key', 'Values'),
      ];
      const instances = model.managedInstances().filter((instance) =>
        filters.every(([key, values]) => {
          const wanted = values as readonly string[];
          if (key === 'InstanceIds') return wanted.includes(instance.id);
          if (key === 'PingStatus') return wanted.includes(instance.online ? 'Online' : 'ConnectionLost');
          if (key.startsWith('tag:')) return wanted.includes(instance.tags[key.slice(4)] ?? '\0');
          throw new ApiError(
            'InvalidInstanceInformationFilterValue',
            `Filter key ${key} is not supported by the local control plane`,
          );
        }),
      );
      const page = paginate(instances, input, 50);
      return {
        InstanceInformationList: page.items.map((instance) => ({
          InstanceId: instance.id,
          PingStatus: instance.online ? 'Online' : 'ConnectionLost',
          LastPingDateTime: Date.now() / 1000,
          AgentVersion: '3.3.0.0',
          IsLatestVersion: true,
          PlatformType: 'Linux',
          PlatformName: 'Amazon Linux',
          PlatformVersion: '2023',
          ResourceType: 'EC2Instance',
          RegistrationDate: instance.registeredAt / 1000,
          ComputerName: `${instance.id}.local`,
          IPAddress: '127.0.0.1',
        })),
        NextToken: page.nextToken,
      };
    }
    case 'PutParameter': {
      const type = typeof input.Type === 'string' ? input.Type : 'String';
      if (!['String', 'StringList', 'SecureString'].includes(type)) {
        throw new ApiError(
          'ValidationException',
          `1 validation error detected: Value '${type}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SecureString, StringList, String]`,
        );
      }
      const stored = model.putParameter(
        requiredString(input, 'Name'),
        requiredString(input, 'Value'),
        type,
        input.Overwrite === true,
      );
      return { Version: stored.version, Tier: 'Standard' };
    }
    case 'GetParameter':
      return { Parameter: parameterJson(model, model.getParameter(requiredString(input, 'Name')), input) };
    case 'GetParametersByPath': {
      const path = requiredString(input, 'Path');
      const found = model.parametersByPath(path, input.Recursive === true);
      const page = paginate(found, input, 10);
      return { Parameters: page.items.map((p) => parameterJson(model, p, input)), NextToken: page.nextToken };
    }
    case 'DeleteParameter':
      if (!model.deleteParameter(requiredString(input, 'Name'))) throw new ApiError('ParameterNotFound', '');
      return {};
    case 'DeleteParameters': {
      const names = Array.isArray(input.Names) ? input.Names.map(String) : [];
      if (names.length < 1 || names.length > 10) {
        const bound = names.length < 1 ? 'greater than or equal to 1' : 'less than or equal to 10';
        throw new ApiError(
          'ValidationException',
          `1 validation error detected: Value '[${names.join(', ')}]' at 'names' failed to satisfy constraint: Member must have length ${bound}`,
        );
      }
      const unique = [...new Set(names)];
      const deleted = unique.filter((name) => model.deleteParameter(name));
      return { DeletedParameters: deleted, InvalidParameters: unique.filter((n) => !deleted.includes(n)) };
    }
    default:
      // AWS names no operation in this answer: `{"__type":"UnknownOperationException"}`.
      throw new ApiError('UnknownOperationException', '');
  }
}

/** A parameter as GetParameter(sByPath) answers it; a SecureString without decryption reads as its ciphertext. */
function parameterJson(model: Ssm, stored: StoredParameter, input: JsonInput) {
  const hidden = stored.type === 'SecureString' && input.WithDecryption !== true;
  return {
    Name: stored.name,
    Type: stored.type,
    Value: hidden ? Buffer.from(`encrypted:${stored.name}`).toString('base64') : stored.value,
    Version: stored.version,
    LastModifiedDate: stored.modifiedAt / 1000,
    ARN: model.parameterArn(stored.name),
    DataType: 'text',
  };
}

/** A document version as CreateDocument, UpdateDocument and DescribeDocument describe it. */
function documentDescription(document: SsmDocument, version: DocumentVersion) {
  return {
    Hash: version.hash,
    HashType: 'Sha256',
    Name: document.name,
    Owner: document.owner,
    CreatedDate: version.createdAt / 1000,
    Status: 'Active',
    DocumentVersion: String(version.version),
    Description: version.description,
    Parameters: Object.entries(version.parameters).map(([name, parameter]) => ({
      Name: name,
      Type: parameter.type ?? 'String',
      ...(parameter.default === undefined ? {} : { DefaultValue: parameter.default }),
    })),
    PlatformTypes: ['Linux', 'MacOS'],
    DocumentType: 'Command',
    SchemaVersion: version.schemaVersion,
    LatestVersion: String((document.versions.at(-1) as DocumentVersion).version),
    DefaultVersion: String(document.defaultVersion),
    DocumentFormat: 'JSON',
    Tags: [],
  };
}

function commandJson(c: Command) {
  const counts = (statuses: string[]) => c.invocations.filter((i) => statuses.includes(i.status)).length;
  return {
    CommandId: c.id,
    DocumentName: c.documentName,
    DocumentVersion: c.documentVersion,
    Comment: c.comment,
    ExpiresAfter: c.expiresAt / 1000,
    Parameters: c.parameters,
    InstanceIds: c.instanceIds,
    Targets: c.targets,
    RequestedDateTime: c.requestedAt / 1000,
    Status: c.status,
    StatusDetails: c.statusDetails,
    OutputS3Region: '',
    OutputS3BucketName: '',
    OutputS3KeyPrefix: '',
    MaxConcurrency: c.maxConcurrency,
    MaxErrors: c.maxErrors,
    TargetCount: c.invocations.length,
    CompletedCount: c.invocations.filter((i) => isTerminalStatus(i.status)).length,
    ErrorCount: counts(['Failed', 'TimedOut']),
    DeliveryTimedOutCount: c.invocations.filter((i) => i.statusDetails === 'DeliveryTimedOut').length,
    ServiceRole: '',
    NotificationConfig: { NotificationArn: '', NotificationEvents: [], NotificationType: '' },
    CloudWatchOutputConfig: { CloudWatchLogGroupName: '', CloudWatchOutputEnabled: false },
    TimeoutSeconds: c.timeoutSeconds,
  };
}

function invocationJson(c: Command, i: Invocation, details: boolean) {
  return {
    CommandId: c.id,
    InstanceId: i.instanceId,
    InstanceName: '',
    Comment: c.comment,
    DocumentName: c.documentName,
    DocumentVersion: c.documentVersion,
    RequestedDateTime: c.requestedAt / 1000,
    Status: i.status,
    StatusDetails: i.statusDetails,
    TraceOutput: '',
    StandardOutputUrl: '',
    StandardErrorUrl: '',
    CommandPlugins: details
      ? [
          {
            Name: c.pluginName,
            Status: i.status,
            StatusDetails: i.statusDetails,
            ResponseCode: i.responseCode,
            ResponseStartDateTime: i.startedAt === undefined ? undefined : i.startedAt / 1000,
            ResponseFinishDateTime: i.endedAt === undefined ? undefined : i.endedAt / 1000,
            // The plugin output in this listing holds only the first 2,500 characters.
            Output: (i.stdout + i.stderr).slice(0, OUTPUT_LIMITS.pluginOutput),
            StandardOutputUrl: '',
            StandardErrorUrl: '',
            OutputS3Region: '',
            OutputS3BucketName: '',
            OutputS3KeyPrefix: '',
          },
        ]
      : [],
    ServiceRole: '',
    NotificationConfig: { NotificationArn: '', NotificationEvents: [], NotificationType: '' },
    CloudWatchOutputConfig: { CloudWatchLogGroupName: '', CloudWatchOutputEnabled: false },
  };
}

function commandFilter(c: Command, key: string, value: unknown): boolean {
  switch (key) {
    case 'DocumentName':
      return c.documentName === value;
    case 'Status':
      return c.status === value;
    case 'InvokedAfter':
      return c.requestedAt >= Date.parse(String(value));
    case 'InvokedBefore':
      return c.requestedAt <= Date.parse(String(value));
    default:
      throw new ApiError('InvalidFilterKey', `Filter key ${key} is not supported by the local control plane`);
  }
}

function invocationFilter(c: Command, i: Invocation, key: string, value: unknown): boolean {
  return key === 'Status' ? i.status === value : commandFilter(c, key, value);
}

/** Reads `[{key, value}]`-style filter lists, whatever the operation calls the fields. */
function keyValueFilters(raw: unknown, keyField: string, valueField: string): [string, unknown][] {
  if (!Array.isArray(raw)) return [];
  return raw.map((f: Record<string, unknown>) => [String(f[keyField]), f[valueField]]);
}

function requiredString(input: JsonInput, name: string): string {
  const value = input[name];
  if (typeof value !== 'string' || value === '') {
    throw new ApiError(
      'ValidationException',
      `1 validation error detected: Value null at '${memberName(name)}' failed to satisfy constraint: Member must not be null`,
    );
  }
  return value;
}

/** A request member as AWS's validation messages name it: `CommandId` → `commandId`. */
function memberName(name: string): string {
  return name.charAt(0).toLowerCase() + name.slice(1);
}

/** MaxResults/NextToken paging; the token is the offset of the next page. */
function paginate<T>(items: readonly T[], input: JsonInput, maxSize: number) {
  const size = typeof input.MaxResults === 'number' ? input.MaxResults : maxSize;
  if (size < 1 || size > maxSize) {
    const bound = size < 1 ? 'greater than or equal to 1' : `less than or equal to ${maxSize}`;
    throw new ApiError(
      'ValidationException',
      `1 validation error detected: Value '${size}' at 'maxResults' failed to satisfy constraint: Member must have value ${bound}`,
    );
  }
  const offset = typeof input.NextToken === 'string' ? Number(input.NextToken) : 0;
  if (!Number.isInteger(offset) || offset < 0)
    throw new ApiError('InvalidNextToken', 'The specified token is not valid');
  const end = offset + size;
  return { items: items.slice(offset, end), nextToken: end < items.length ? String(end) : undefined };
}

function elapsed(i: Invocation): string {
  if (i.startedAt === undefined) return '';
  return `PT${(((i.endedAt ?? Date.now()) - i.startedAt) / 1000).toFixed(3)}S`;
}
