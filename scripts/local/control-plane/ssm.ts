import { createHash } from 'node:crypto';
import {
  COMMAND_STATUS_DETAIL_TYPE,
  INVOCATION_STATUS_DETAIL_TYPE,
  isTerminalStatus,
} from '../../../functions/shared/event-patterns';
import { ApiError } from './api-error';
import type { Clock } from './clock';
import type { EventBus } from './event-bus';
import { uuid } from './ids';

/** What an agent is asked to run: the document with every parameter resolved. */
export interface Execution {
  readonly instanceId: string;
  readonly commandId: string;
  readonly documentName: string;
  readonly documentContent: string;
  readonly parameters: Readonly<Record<string, string>>;
  /** Aborted when the instance is terminated or the command cancelled. */
  readonly signal: AbortSignal;
}

/** How a run ended, as the agent reports it. */
export interface ExecutionResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  /** The document's execution timeout stopped the script. */
  readonly timedOut: boolean;
}

/** Runs SelfDeploy (or any) commands on one simulated instance. */
export type Agent = (execution: Execution) => Promise<ExecutionResult>;

/** The Amazon-owned document operators reach for first; every account has it. */
export const RUN_SHELL_SCRIPT = 'AWS-RunShellScript';

/** AWS-RunShellScript's content (schema 1.2), its parameters as AWS declares them. */
const RUN_SHELL_SCRIPT_CONTENT = JSON.stringify({
  schemaVersion: '1.2',
  description: 'Run a shell script or specify the commands to run.',
  parameters: {
    commands: { type: 'StringList', description: '(Required) Specify a shell script or a command to run.' },
    workingDirectory: {
      type: 'String',
      default: '',
      description: '(Optional) The path to the working directory on your instance.',
    },
    executionTimeout: {
      type: 'String',
      default: '3600',
      description:
        '(Optional) The time in seconds for a command to complete before it is considered to have failed. Default is 3600 (1 hour). Maximum is 172800 (48 hours).',
      allowedPattern: '^([1-9][0-9]{0,4}|1[0-6][0-9]{4}|17[0-1][0-9]{3}|172[0-7][0-9]{2}|172800)$',
    },
  },
  runtimeConfig: {
    'aws:runShellScript': {
      properties: [
        {
          id: '0.aws:runShellScript',
          runCommand: '{{ commands }}',
          workingDirectory: '{{ workingDirectory }}',
          timeoutSeconds: '{{ executionTimeout }}',
        },
      ],
    },
  },
});

/** SendCommand's TimeoutSeconds (the delivery timeout): bounds and default. */
export const DELIVERY_TIMEOUT = { min: 30, max: 2_592_000, default: 3600 } as const;

/** The longest value a Standard-tier parameter holds. */
const PARAMETER_VALUE_LIMIT = 4096;
/** The most levels a parameter name's hierarchy has. */
const PARAMETER_LEVELS = 15;

/** Refuses a parameter name as PutParameter does: characters, the reserved prefixes, its levels. */
function checkParameterName(name: string): void {
  const segments = name.split('/');
  const reserved = name.startsWith('/') ? /^(aws|ssm)$/i.test(segments[1] ?? '') : /^(aws|ssm)/i.test(name);
  if (!/^[a-zA-Z0-9_./-]+$/.test(name) || reserved) {
    throw new ApiError(
      'ValidationException',
      'Parameter name: can\'t be prefixed with "aws" or "ssm" (case-insensitive). If formed as a path, it can consist of sub-paths divided by slash symbol; each sub-path can be formed as a mix of letters, numbers and the following 3 symbols .-_',
    );
  }
  if (name.includes('/') && (!name.startsWith('/') || segments.slice(1).some((s) => s === ''))) {
    throw new ApiError('ValidationException', 'Parameter name must be a fully qualified name.');
  }
  if (segments.length - (name.startsWith('/') ? 1 : 0) > PARAMETER_LEVELS) {
    throw new ApiError(
      'HierarchyLevelLimitExceededException',
      `A hierarchy can have a maximum of ${PARAMETER_LEVELS} levels.`,
    );
  }
}

/** SSM's limits on command output (GetCommandInvocation; ListCommandInvocations plugin output). */
export const OUTPUT_LIMITS = { stdout: 24_000, stderr: 8_000, pluginOutput: 2_500 } as const;

/** A document parameter as SSM checks values against it. */
export interface DocumentParameter {
  readonly type?: string;
  readonly default?: string;
  readonly allowedPattern?: string;
  readonly allowedValues?: readonly string[];
}

/** One version of a document: what a command sent with it runs, whatever the default is later. */
export interface DocumentVersion {
  readonly version: number;
  readonly content: string;
  readonly parameters: Readonly<Record<string, DocumentParameter>>;
  readonly pluginName: string;
  readonly schemaVersion: string;
  readonly description: string;
  /** SHA-256 of the content, as DescribeDocument's Hash. */
  readonly hash: string;
  readonly createdAt: number;
}

/** A Command document and its versions (1, 2, …); `defaultVersion` is what `$DEFAULT` runs. */
export interface SsmDocument {
  readonly name: string;
  /** `Amazon` for the AWS-… documents every account has (they cannot be updated), else the account. */
  readonly owner: string;
  readonly createdAt: number;
  readonly versions: DocumentVersion[];
  defaultVersion: number;
}

/** The most versions a document keeps (SSM's quota); UpdateDocument past it is refused. */
const DOCUMENT_VERSION_LIMIT = 1000;
/** A document version as the API takes it: `$DEFAULT`, `$LATEST` or a number from 1. */
const DOCUMENT_VERSION_PATTERN = /^([$]LATEST|[$]DEFAULT|[1-9][0-9]*)$/;

export interface ManagedInstance {
  readonly id: string;
  readonly registeredAt: number;
  readonly tags: Readonly<Record<string, string>>;
  readonly agent: Agent;
  online: boolean;
  /** Terminated: commands can no longer be sent to it. */
  gone: boolean;
}

export interface Invocation {
  readonly commandId: string;
  readonly instanceId: string;
  readonly visibleAt: number;
  status: string;
  statusDetails: string;
  responseCode: number;
  startedAt?: number;
  endedAt?: number;
  stdout: string;
  stderr: string;
  abort?: AbortController;
}

export interface Command {
  readonly id: string;
  readonly documentName: string;
  /** The DocumentVersion as the request gave it (`$DEFAULT` when it gave none), as the reads answer it. */
  readonly documentVersion: string;
  /** The version it runs: the request's, resolved when it was sent (a later default changes nothing). */
  readonly ranVersion: number;
  /** The document's (first) step, reported as the plugin name. */
  readonly pluginName: string;
  readonly comment: string;
  readonly parameters: Readonly<Record<string, readonly string[]>>;
  readonly instanceIds: readonly string[];
  readonly targets: readonly { Key: string; Values: readonly string[] }[];
  readonly requestedAt: number;
  readonly expiresAt: number;
  readonly timeoutSeconds: number;
  readonly maxConcurrency: string;
  readonly maxErrors: string;
  status: string;
  statusDetails: string;
  readonly invocations: Invocation[];
}

export interface SendCommandInput {
  readonly DocumentName?: string;
  readonly DocumentVersion?: string;
  readonly InstanceIds?: readonly string[];
  readonly Targets?: readonly { Key?: string; Values?: readonly string[] }[];
  readonly Parameters?: Readonly<Record<string, readonly string[]>>;
  readonly Comment?: string;
  readonly TimeoutSeconds?: number;
  readonly MaxConcurrency?: string;
  readonly MaxErrors?: string;
}

export interface StoredParameter {
  readonly name: string;
  readonly type: string;
  readonly value: string;
  readonly version: number;
  readonly modifiedAt: number;
}

/**
 * Systems Manager as selfdeploy sees it: managed instances whose agents register late,
 * documents, Run Command with per-instance invocations, status-change events, and the
 * Parameter Store. Commands run on the instance's agent; its exit code is the status.
 */
export class Ssm {
  readonly #documents = new Map<string, SsmDocument>();
  readonly #instances = new Map<string, ManagedInstance>();
  readonly #commands = new Map<string, Command>();
  readonly #parameters = new Map<string, StoredParameter>();
  /** Invocations waiting for an offline agent, by instance id: each is called when it comes back. */
  readonly #awaitingAgent = new Map<string, Set<() => void>>();

  public constructor(
    private readonly clock: Clock,
    private readonly bus: EventBus,
    private readonly account: string,
    private readonly region: string,
    /** Simulated seconds for which a new invocation is not yet readable (eventual consistency). */
    private readonly visibilityDelaySeconds = 1,
  ) {
    this.putDocument(RUN_SHELL_SCRIPT, RUN_SHELL_SCRIPT_CONTENT, 'Amazon');
  }

  /** Creates (or replaces) a Command document from its JSON content (schema 2.2), as its version 1. */
  public putDocument(name: string, content: string, owner = this.account): SsmDocument {
    const createdAt = Date.now();
    const document: SsmDocument = {
      name,
      owner,
      createdAt,
      versions: [documentVersion(1, content, createdAt)],
      defaultVersion: 1,
    };
    this.#documents.set(name, document);
    return document;
  }

  /** CreateDocument: a new Command document in JSON, its version 1 the default. */
  public createDocument(name: string, content: string): SsmDocument {
    if (this.#documents.has(name))
      throw new ApiError('DocumentAlreadyExists', 'Document with same name already exists.');
    checkContent(content);
    return this.putDocument(name, content);
  }

  /**
   * UpdateDocument: the content as the document's next version, which does not become the
   * default (UpdateDocumentDefaultVersion does that). Only the latest version can be updated;
   * content equal to the latest version's is refused, and so is a version past the quota.
   */
  public updateDocument(name: string, content: string, version?: string): DocumentVersion {
    const document = this.#ownDocument(name);
    const latest = document.versions.at(-1) as DocumentVersion;
    if (version !== undefined && version !== '$LATEST' && version !== String(latest.version)) {
      checkVersionPattern(version);
      throw new ApiError(
        'InvalidDocumentVersion',
        'The document version is not valid or does not exist. Only the latest version of a document can be updated.',
      );
    }
    checkContent(content);
    if (hashOf(content) === latest.hash) {
      throw new ApiError(
        'DuplicateDocumentContent',
        'The content of the document matches its latest version. Change the content of the document and try again.',
      );
    }
    if (document.versions.length >= DOCUMENT_VERSION_LIMIT) {
      throw new ApiError(
        'DocumentVersionLimitExceeded',
        'The document has too many versions. Delete one or more document versions and try again.',
      );
    }
    const next = documentVersion(latest.version + 1, content, Date.now());
    document.versions.push(next);
    return next;
  }

  /** UpdateDocumentDefaultVersion: the version `$DEFAULT` (and so every later command without a version) runs. */
  public setDefaultVersion(name: string, version: string): SsmDocument {
    const document = this.#ownDocument(name);
    if (!/^[1-9][0-9]*$/.test(version)) {
      throw new ApiError(
        'ValidationException',
        `1 validation error detected: Value '${version}' at 'documentVersion' failed to satisfy constraint: Member must satisfy regular expression pattern: (^[1-9][0-9]*$)`,
      );
    }
    document.defaultVersion = this.documentVersion(name, version).version;
    return document;
  }

  /** The document `name`; InvalidDocument when there is none. */
  public document(name: string): SsmDocument {
    const document = this.#documents.get(name);
    if (!document) throw new ApiError('InvalidDocument', `Document ${name} does not exist`);
    return document;
  }

  /** The version `version` (`$DEFAULT` when absent, `$LATEST` or a number) names; InvalidDocumentVersion when none. */
  public documentVersion(name: string, version = '$DEFAULT'): DocumentVersion {
    const document = this.document(name);
    checkVersionPattern(version);
    const wanted =
      version === '$DEFAULT'
        ? document.defaultVersion
        : version === '$LATEST'
          ? (document.versions.at(-1) as DocumentVersion).version
          : Number(version);
    const found = document.versions.find((v) => v.version === wanted);
    if (!found)
      throw new ApiError('InvalidDocumentVersion', 'The document version is not valid or does not exist.');
    return found;
  }

  /** The agent on `id` has registered: from now on commands can be sent to it. */
  public registerInstance(id: string, tags: Record<string, string>, agent: Agent): void {
    this.#instances.set(id, { id, registeredAt: Date.now(), tags, agent, online: true, gone: false });
    const waiting = this.#awaitingAgent.get(id);
    this.#awaitingAgent.delete(id);
    for (const deliver of waiting ?? []) deliver();
  }

  /**
   * The instance stopped (its agent is ConnectionLost: commands sent to it wait for it until
   * their delivery timeout) or, `gone`, was terminated. Runs in progress fail Undeliverable;
   * on termination so do the commands still waiting for delivery.
   */
  public agentOffline(id: string, gone = false): void {
    const instance = this.#instances.get(id);
    if (instance) {
      instance.online = false;
      instance.gone ||= gone;
    }
    if (gone) {
      // Those waiting for its agent stop waiting: they are ended Undeliverable below.
      const waiting = this.#awaitingAgent.get(id);
      this.#awaitingAgent.delete(id);
      for (const release of waiting ?? []) release();
    }
    for (const command of this.#commands.values()) {
      for (const invocation of command.invocations) {
        if (invocation.instanceId !== id || isTerminalStatus(invocation.status)) continue;
        if (!gone && invocation.startedAt === undefined) continue;
        invocation.abort?.abort();
        this.#end(
          command,
          invocation,
          'Failed',
          'Undeliverable',
          invocation.startedAt === undefined ? -1 : invocation.responseCode,
        );
      }
    }
  }

  public managedInstances(): ManagedInstance[] {
    return [...this.#instances.values()];
  }

  public commands(): Command[] {
    return [...this.#commands.values()];
  }

  public command(id: string): Command | undefined {
    return this.#commands.get(id);
  }

  public sendCommand(input: SendCommandInput): Command {
    // The version is fixed now: a command runs the content it was sent with, as the agent gets it.
    const document = this.documentVersion(input.DocumentName ?? '', input.DocumentVersion);
    if ((input.Comment ?? '').length > 100) {
      throw new ApiError(
        'ValidationException',
        "1 validation error detected: Value at 'comment' failed to satisfy constraint: Member must have length less than or equal to 100",
      );
    }
    const timeoutSeconds = input.TimeoutSeconds ?? DELIVERY_TIMEOUT.default;
    if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < DELIVERY_TIMEOUT.min) {
      throw new ApiError(
        'ValidationException',
        `1 validation error detected: Value '${timeoutSeconds}' at 'timeoutSeconds' failed to satisfy constraint: Member must have value greater than or equal to ${DELIVERY_TIMEOUT.min}`,
      );
    }
    if (timeoutSeconds > DELIVERY_TIMEOUT.max) {
      throw new ApiError(
        'ValidationException',
        `1 validation error detected: Value '${timeoutSeconds}' at 'timeoutSeconds' failed to satisfy constraint: Member must have value less than or equal to ${DELIVERY_TIMEOUT.max}`,
      );
    }
    const instanceIds = this.#resolveTargets(input);
    const { values: resolved, problems } = resolveParameters(document.parameters, input.Parameters ?? {});
    // AWS answers InvalidParameters with no message.
    if (problems.length > 0) throw new ApiError('InvalidParameters', '');
    const requestedAt = Date.now();
    const command: Command = {
      id: uuid(),
      documentName: input.DocumentName ?? '',
      documentVersion: input.DocumentVersion ?? '$DEFAULT',
      ranVersion: document.version,
      pluginName: document.pluginName,
      comment: input.Comment ?? '',
      parameters: input.Parameters ?? {},
      instanceIds: input.InstanceIds ?? [],
      targets: (input.Targets ?? []).map((t) => ({ Key: t.Key ?? '', Values: t.Values ?? [] })),
      requestedAt,
      expiresAt: requestedAt + timeoutSeconds * 1000,
      timeoutSeconds,
      maxConcurrency: input.MaxConcurrency ?? '50',
      maxErrors: input.MaxErrors ?? '0',
      status: 'Pending',
      statusDetails: 'Pending',
      invocations: instanceIds.map((instanceId) => ({
        commandId: '',
        instanceId,
        visibleAt: requestedAt + this.clock.realMs(this.visibilityDelaySeconds),
        status: 'Pending',
        statusDetails: 'Pending',
        responseCode: -1,
        stdout: '',
        stderr: '',
      })),
    };
    for (const invocation of command.invocations) Object.assign(invocation, { commandId: command.id });
    this.#commands.set(command.id, command);
    this.#emitCommand(command);
    for (const invocation of command.invocations) this.#emitInvocation(command, invocation);
    void this.#run(command, document, resolved);
    return command;
  }

  /**
   * GetCommandInvocation: AWS answers InvocationDoesNotExist, with no message, for an unknown
   * command, an instance the command was not sent to, and an invocation not yet visible.
   */
  public invocation(commandId: string, instanceId: string): Invocation {
    const invocation = this.#commands.get(commandId)?.invocations.find((i) => i.instanceId === instanceId);
    if (!invocation || !this.visible(invocation)) throw new ApiError('InvocationDoesNotExist', '');
    return invocation;
  }

  /**
   * Whether reads see the invocation yet: eventually consistent for the propagation delay
   * after SendCommand, but by the time a run has finished (and its status event is out) AWS
   * has the invocation.
   */
  public visible(invocation: Invocation): boolean {
    return Date.now() >= invocation.visibleAt || isTerminalStatus(invocation.status);
  }

  /**
   * PutParameter: the name checked as SSM checks it, a Standard-tier value of at most 4096
   * characters; with `overwrite` false an existing name is refused (an atomic create).
   */
  public putParameter(name: string, value: string, type: string, overwrite: boolean): StoredParameter {
    checkParameterName(name);
    if (value.length > PARAMETER_VALUE_LIMIT) {
      throw new ApiError(
        'ValidationException',
        `Standard tier parameters support a maximum parameter value of ${PARAMETER_VALUE_LIMIT} characters. To create a larger parameter value, upgrade the parameter to use the advanced-parameter tier. For more information, see https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html`,
      );
    }
    const existing = this.#parameters.get(name);
    if (existing && !overwrite) {
      throw new ApiError(
        'ParameterAlreadyExists',
        'The parameter already exists. To overwrite this value, set the overwrite option in the request to true.',
      );
    }
    const stored = { name, type, value, version: (existing?.version ?? 0) + 1, modifiedAt: Date.now() };
    this.#parameters.set(name, stored);
    return stored;
  }

  public getParameter(name: string): StoredParameter {
    const stored = this.#parameters.get(name);
    if (!stored) throw new ApiError('ParameterNotFound', '');
    return stored;
  }

  /**
   * GetParametersByPath's selection, by name: without `recursive` only the path's direct
   * children (`/a` lists `/a/b`, not `/a/b/c`), with it every level below the path.
   */
  public parametersByPath(path: string, recursive: boolean): StoredParameter[] {
    if (!/^\/([a-zA-Z0-9_.-]+\/)*[a-zA-Z0-9_.-]*$/.test(path)) {
      throw new ApiError(
        'ValidationException',
        'The parameter doesn\'t meet the parameter name requirements. The parameter name must begin with a forward slash "/". It can\'t be prefixed with "aws" or "ssm" (case-insensitive). It must use only letters, numbers, or the following symbols: . (period), - (hyphen), _ (underscore). Special characters are not allowed. All sub-paths, if specified, must use the forward slash symbol "/". Valid example: /get/parameters2-/by1./path0_.',
      );
    }
    const prefix = path.endsWith('/') ? path : `${path}/`;
    return [...this.#parameters.values()]
      .filter(
        ({ name }) => name.startsWith(prefix) && (recursive || !name.slice(prefix.length).includes('/')),
      )
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** DeleteParameter(s): true when the parameter existed. */
  public deleteParameter(name: string): boolean {
    return this.#parameters.delete(name);
  }

  public parameterArn(name: string): string {
    return `arn:aws:ssm:${this.region}:${this.account}:parameter${name.startsWith('/') ? '' : '/'}${name}`;
  }

  /** Cancels every unfinished invocation's run, so nothing is left executing. */
  public stop(): void {
    for (const command of this.#commands.values()) {
      for (const invocation of command.invocations) invocation.abort?.abort();
    }
  }

  /** A document this account owns and may change; the AWS-… documents are Amazon's. */
  #ownDocument(name: string): SsmDocument {
    const document = this.document(name);
    if (document.owner !== this.account) {
      throw new ApiError(
        'InvalidDocumentOperation',
        `Document ${name} is owned by ${document.owner} and cannot be changed.`,
      );
    }
    return document;
  }

  #resolveTargets(input: SendCommandInput): string[] {
    let ids: string[];
    if (input.InstanceIds && input.InstanceIds.length > 0) {
      if (input.InstanceIds.length > 50) {
        throw new ApiError(
          'ValidationException',
          "1 validation error detected: Value at 'instanceIds' failed to satisfy constraint: Member must have length less than or equal to 50",
        );
      }
      // A stopped instance's agent is ConnectionLost: SSM still accepts commands for it.
      const invalid = input.InstanceIds.filter((id) => {
        const instance = this.#instances.get(id);
        return instance === undefined || instance.gone;
      });
      if (invalid.length > 0) {
        throw new ApiError(
          'InvalidInstanceId',
          `Instances [[${invalid.join(', ')}]] not in a valid state for account ${this.account}`,
        );
      }
      ids = [...input.InstanceIds];
    } else if (input.Targets && input.Targets.length > 0) {
      ids = [...this.#instances.values()]
        .filter(
          (instance) =>
            instance.online && (input.Targets ?? []).every((target) => matchesTarget(instance, target)),
        )
        .map((instance) => instance.id);
    } else {
      throw new ApiError('ValidationException', 'Either InstanceIds or Targets must be specified');
    }
    return ids;
  }

  async #run(command: Command, document: DocumentVersion, parameters: Record<string, string>): Promise<void> {
    if (command.invocations.length === 0) {
      this.#setCommandStatus(command, 'Success', 'NoInstancesInTag');
      return;
    }
    const concurrency = limit(command.maxConcurrency, command.invocations.length, 1);
    const maxErrors = limit(command.maxErrors, command.invocations.length, 0);
    const queue = [...command.invocations];
    const worker = async (): Promise<void> => {
      for (let next = queue.shift(); next; next = queue.shift()) {
        if (errorCount(command) > maxErrors) {
          // Past MaxErrors, SSM stops sending the command to further targets.
          this.#end(command, next, 'Cancelled', 'Terminated', -1);
          continue;
        }
        if (next.status === 'Pending') await this.#runOne(command, next, document, parameters);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, worker));
  }

  async #runOne(
    command: Command,
    invocation: Invocation,
    document: DocumentVersion,
    parameters: Record<string, string>,
  ): Promise<void> {
    let instance = this.#instances.get(invocation.instanceId);
    if (instance && !instance.online && !instance.gone) {
      await this.#awaitDelivery(command, invocation);
      instance = this.#instances.get(invocation.instanceId);
    }
    if (isTerminalStatus(invocation.status)) return;
    if (!instance?.online) {
      this.#end(command, invocation, 'Failed', 'Undeliverable', -1);
      return;
    }
    invocation.abort = new AbortController();
    invocation.startedAt = Date.now();
    invocation.status = 'InProgress';
    invocation.statusDetails = 'InProgress';
    this.#emitInvocation(command, invocation);
    if (command.status === 'Pending') this.#setCommandStatus(command, 'InProgress', 'InProgress');
    let result: ExecutionResult;
    try {
      result = await instance.agent({
        instanceId: invocation.instanceId,
        commandId: command.id,
        documentName: command.documentName,
        documentContent: document.content,
        parameters,
        signal: invocation.abort.signal,
      });
    } catch (error) {
      result = {
        exitCode: 1,
        stdout: '',
        stderr: `agent error: ${(error as Error).message}`,
        timedOut: false,
      };
    }
    if (isTerminalStatus(invocation.status)) return;
    invocation.stdout = result.stdout;
    invocation.stderr = result.stderr;
    if (result.timedOut) this.#end(command, invocation, 'TimedOut', 'ExecutionTimedOut', result.exitCode);
    else if (result.exitCode === 0) this.#end(command, invocation, 'Success', 'Success', 0);
    else this.#end(command, invocation, 'Failed', 'Failed', result.exitCode);
  }

  /**
   * Waits until the invocation's offline agent comes back; past the command's delivery
   * timeout (TimeoutSeconds, simulated) it ends TimedOut / DeliveryTimedOut undelivered.
   */
  #awaitDelivery(command: Command, invocation: Invocation): Promise<void> {
    return new Promise((resolve) => {
      const waiting = this.#awaitingAgent.get(invocation.instanceId) ?? new Set<() => void>();
      this.#awaitingAgent.set(invocation.instanceId, waiting);
      const cancelTimer = this.clock.after(command.timeoutSeconds, () => {
        waiting.delete(deliver);
        if (!isTerminalStatus(invocation.status)) {
          this.#end(command, invocation, 'TimedOut', 'DeliveryTimedOut', -1);
        }
        resolve();
      });
      const deliver = (): void => {
        cancelTimer();
        resolve();
      };
      waiting.add(deliver);
    });
  }

  #end(
    command: Command,
    invocation: Invocation,
    status: string,
    details: string,
    responseCode: number,
  ): void {
    invocation.status = status;
    invocation.statusDetails = details;
    invocation.responseCode = responseCode;
    invocation.endedAt = Date.now();
    this.#emitInvocation(command, invocation);
    if (!command.invocations.every((i) => isTerminalStatus(i.status))) return;
    const errors = errorCount(command);
    if (command.invocations.length === 1) this.#setCommandStatus(command, status, details);
    else if (command.invocations.every((i) => i.status === 'Success'))
      this.#setCommandStatus(command, 'Success', 'Success');
    else if (errors > limit(command.maxErrors, command.invocations.length, 0))
      this.#setCommandStatus(command, 'Failed', 'Failed');
    else this.#setCommandStatus(command, 'Failed', 'Incomplete');
  }

  #setCommandStatus(command: Command, status: string, details: string): void {
    command.status = status;
    command.statusDetails = details;
    this.#emitCommand(command);
  }

  #emitCommand(command: Command): void {
    this.bus.put(
      this.bus.event(
        'aws.ssm',
        COMMAND_STATUS_DETAIL_TYPE,
        {
          'command-id': command.id,
          'document-name': command.documentName,
          'expire-after': new Date(command.expiresAt).toISOString(),
          parameters: command.parameters,
          'requested-date-time': new Date(command.requestedAt).toISOString(),
          status: command.status,
        },
        command.invocations.map((i) => this.#instanceArn(i.instanceId)),
      ),
    );
  }

  #emitInvocation(command: Command, invocation: Invocation): void {
    this.bus.put(
      this.bus.event(
        'aws.ssm',
        INVOCATION_STATUS_DETAIL_TYPE,
        {
          'command-id': command.id,
          'document-name': command.documentName,
          'instance-id': invocation.instanceId,
          'requested-date-time': new Date(command.requestedAt).toISOString(),
          status: invocation.status,
        },
        [this.#instanceArn(invocation.instanceId)],
      ),
    );
  }

  #instanceArn(id: string): string {
    return `arn:aws:ec2:${this.region}:${this.account}:instance/${id}`;
  }
}

function hashOf(content: string): string {
  return createHash('sha256').update(content).digest('hex');
}

function documentVersion(version: number, content: string, createdAt: number): DocumentVersion {
  const parsed = JSON.parse(content) as {
    schemaVersion?: string;
    description?: string;
    parameters?: Record<string, DocumentParameter>;
    mainSteps?: { name?: string }[];
  };
  return {
    version,
    content,
    parameters: parsed.parameters ?? {},
    pluginName: parsed.mainSteps?.[0]?.name ?? 'aws:runShellScript',
    schemaVersion: parsed.schemaVersion ?? '',
    description: parsed.description ?? '',
    hash: hashOf(content),
    createdAt,
  };
}

/** Refuses content that is not a JSON Command document (this stand-in reads no YAML). */
function checkContent(content: string): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(content);
  } catch (error) {
    throw new ApiError(
      'InvalidDocumentContent',
      `The content for the document is not valid: ${(error as Error).message}`,
    );
  }
  const schema = (parsed as { schemaVersion?: unknown } | null)?.schemaVersion;
  if (typeof schema !== 'string' || !['1.2', '2.0', '2.2'].includes(schema)) {
    throw new ApiError(
      'InvalidDocumentSchemaVersion',
      'The version of the document schema is not supported.',
    );
  }
}

/** A DocumentVersion outside `$DEFAULT`, `$LATEST` and numbers is refused before it is looked up. */
function checkVersionPattern(version: string): void {
  if (!DOCUMENT_VERSION_PATTERN.test(version)) {
    throw new ApiError(
      'ValidationException',
      `1 validation error detected: Value '${version}' at 'documentVersion' failed to satisfy constraint: Member must satisfy regular expression pattern: ([$]LATEST|[$]DEFAULT|^[1-9][0-9]*$)`,
    );
  }
}

/**
 * Every parameter's value (given, else its default), checked as SSM checks them before it
 * accepts a command: an unknown or missing parameter, or a value outside its allowedPattern
 * or allowedValues, is a problem. SendCommand gives each value as a list (a StringList of
 * commands becomes one line per element, as runCommand gets it); an agent gets plain strings.
 * The values are usable only when `problems` is empty.
 */
export function resolveParameters(
  declared: Readonly<Record<string, DocumentParameter>>,
  given: Readonly<Record<string, string | readonly string[]>>,
): { values: Record<string, string>; problems: string[] } {
  const problems = Object.keys(given)
    .filter((name) => !(name in declared))
    .map((name) => `the document declares no parameter ${name}`);
  const values: Record<string, string> = {};
  for (const [name, spec] of Object.entries(declared)) {
    const raw = given[name];
    const value =
      raw === undefined || typeof raw === 'string'
        ? (raw ?? spec.default)
        : raw.join(spec.type === 'StringList' ? '\n' : ',');
    if (value === undefined) {
      problems.push(`parameter ${name} has no value and no default`);
    } else if (spec.allowedPattern !== undefined && !new RegExp(spec.allowedPattern).test(value)) {
      problems.push(`parameter ${name} value ${JSON.stringify(value)} does not match ${spec.allowedPattern}`);
    } else if (spec.allowedValues !== undefined && !spec.allowedValues.includes(value)) {
      problems.push(
        `parameter ${name} value ${JSON.stringify(value)} is not one of ${spec.allowedValues.join(', ')}`,
      );
    } else {
      values[name] = value;
    }
  }
  return { values, problems };
}

function matchesTarget(
  instance: ManagedInstance,
  target: { Key?: string; Values?: readonly string[] },
): boolean {
  const values = target.Values ?? [];
  if (target.Key === 'InstanceIds') return values.includes(instance.id);
  if (target.Key?.startsWith('tag:')) {
    const tag = instance.tags[target.Key.slice(4)];
    return tag !== undefined && values.includes(tag);
  }
  return false;
}

/** MaxConcurrency / MaxErrors: an absolute number or a percentage of the targets. */
function limit(spec: string, targets: number, floor: number): number {
  if (spec.endsWith('%')) return Math.max(floor, Math.floor((Number(spec.slice(0, -1)) / 100) * targets));
  return Math.max(floor, Number(spec));
}

function errorCount(command: Command): number {
  return command.invocations.filter((i) => i.status === 'Failed' || i.status === 'TimedOut').length;
}
