import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CreateDocumentCommand,
  DescribeDocumentCommand,
  GetCommandInvocationCommand,
  type GetCommandInvocationCommandOutput,
  GetDocumentCommand,
  GetParameterCommand,
  ListCommandInvocationsCommand,
  ListCommandsCommand,
  PutParameterCommand,
  SendCommandCommand,
  SSMClient,
  UpdateDocumentCommand,
  UpdateDocumentDefaultVersionCommand,
} from '@aws-sdk/client-ssm';
import { standInAgent } from '../../scripts/local/agents';
import { ControlPlane, type ControlPlaneOptions } from '../../scripts/local/control-plane/control-plane';
import { simulatedInstances } from '../../scripts/local/deploy-agent';
import { createSampleApp } from '../../scripts/local/sample-app';
import { type AppUser, ensureAppUser, removeAppUser, runUserName, type Sshd } from '../../scripts/local/sshd';
import { planeClientConfig } from './support';

jest.setTimeout(30_000);

const APP_PATH = '/srv/app';
/** A document of the account's own, for what does not depend on AWS-RunShellScript. */
const PROBE = 'Probe';
const PROBE_CONTENT = JSON.stringify({
  schemaVersion: '2.2',
  description: 'probe',
  parameters: { level: { type: 'String', default: '1', allowedPattern: '^[0-9]$' } },
  mainSteps: [{ action: 'aws:runShellScript', name: 'probe', inputs: { runCommand: ['true'] } }],
});

let plane: ControlPlane;
let ssm: SSMClient;
const cleanups: (() => void)[] = [];

async function startPlane(options: ControlPlaneOptions = {}): Promise<void> {
  plane = await ControlPlane.start({ timeScale: 100, ...options });
  plane.ssm.putDocument(PROBE, PROBE_CONTENT);
  ssm = new SSMClient(planeClientConfig(plane));
}

/** One running instance with a registered agent; its id. */
async function oneInstance(): Promise<string> {
  plane.autoScaling.createGroup({ name: 'web', maxSize: 1, desiredCapacity: 1 });
  const id = plane.autoScaling.instances()[0]?.id as string;
  await until(() => plane.ssm.managedInstances().some((i) => i.id === id && i.online));
  return id;
}

/**
 * Instances that run commands for real, each under its own root, as a user of this test's
 * own (as root) — the world of a real-deploy `npm start`, without its sshd.
 */
function realInstances(): { dir: string; appUser: AppUser; options: ControlPlaneOptions } {
  const dir = mkdtempSync(join(tmpdir(), 'selfdeploy-ssm-'));
  const appUser = ensureAppUser(runUserName('ssm'));
  cleanups.push(
    () => rmSync(dir, { recursive: true, force: true }),
    () => removeAppUser(appUser.name),
  );
  const sshd: Sshd = {
    port: 1,
    hostKeyDir: dir,
    configPath: '',
    logPath: '',
    regenerateHostKeys: async () => undefined,
    stop: async () => undefined,
  };
  const instances = simulatedInstances({
    dir: join(dir, 'instances'),
    app: createSampleApp({ dir: join(dir, 'app'), owner: appUser }),
    appUser,
    sshd,
    region: 'us-east-1',
    appPath: APP_PATH,
    deployPath: `${APP_PATH}/deploy`,
  });
  return { dir, appUser, options: { agent: instances.agent, machine: instances.machine } };
}

async function until<T>(probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** GetCommandInvocation once the invocation has ended. */
function finished(commandId: string, instanceId: string): Promise<GetCommandInvocationCommandOutput> {
  return until(async () => {
    try {
      const result = await ssm.send(
        new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }),
      );
      return ['Pending', 'InProgress', 'Delayed'].includes(result.Status ?? '') ? undefined : result;
    } catch {
      return undefined;
    }
  });
}

async function runShellScript(instanceId: string, parameters: Record<string, string[]>): Promise<string> {
  const { Command } = await ssm.send(
    new SendCommandCommand({
      DocumentName: 'AWS-RunShellScript',
      InstanceIds: [instanceId],
      Parameters: parameters,
    }),
  );
  return Command?.CommandId as string;
}

/** Sends the probe document; its command id. */
async function probe(instanceId: string, timeoutSeconds?: number): Promise<string> {
  const { Command } = await ssm.send(
    new SendCommandCommand({
      DocumentName: PROBE,
      InstanceIds: [instanceId],
      ...(timeoutSeconds === undefined ? {} : { TimeoutSeconds: timeoutSeconds }),
    }),
  );
  return Command?.CommandId as string;
}

afterEach(async () => {
  ssm?.destroy();
  await plane?.close();
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

describe('AWS-RunShellScript', () => {
  it("runs the commands as the instance's application user inside the instance's root", async () => {
    const world = realInstances();
    await startPlane(world.options);
    const id = await oneInstance();
    const root = join(world.dir, 'instances', id);
    await until(() => existsSync(join(root, APP_PATH)));

    const commandId = await runShellScript(id, {
      commands: ['id -un', 'pwd', 'echo "$HOME"', 'touch made-here'],
      workingDirectory: [APP_PATH],
    });

    const invocation = await finished(commandId, id);
    expect(invocation).toMatchObject({ Status: 'Success', StatusDetails: 'Success', ResponseCode: 0 });
    expect(invocation.StandardOutputContent).toBe(
      `${world.appUser.name}\n${join(root, APP_PATH)}\n${world.appUser.home}\n`,
    );
    expect(statSync(join(root, APP_PATH, 'made-here')).uid).toBe(world.appUser.uid);
    const { CommandInvocations } = await ssm.send(
      new ListCommandInvocationsCommand({ CommandId: commandId, Details: true }),
    );
    expect(CommandInvocations?.[0]?.CommandPlugins?.[0]?.Name).toBe('aws:runShellScript');
  });

  it('reports a failing command as Failed with its exit code, and a working directory outside the instance as Failed', async () => {
    const world = realInstances();
    await startPlane(world.options);
    const id = await oneInstance();

    const failing = await runShellScript(id, { commands: ['echo about to fail >&2', 'exit 7'] });
    const outside = await runShellScript(id, { commands: ['pwd'], workingDirectory: ['../../..'] });

    expect(await finished(failing, id)).toMatchObject({
      Status: 'Failed',
      ResponseCode: 7,
      StandardErrorContent: 'about to fail\n',
    });
    expect(await finished(outside, id)).toMatchObject({
      Status: 'Failed',
      ResponseCode: 1,
      StandardErrorContent: expect.stringContaining('workingDirectory ../../.. is not a directory'),
    });
  });

  it('stops commands at executionTimeout: TimedOut, ExecutionTimedOut, response code 137', async () => {
    const world = realInstances();
    await startPlane(world.options);
    const id = await oneInstance();

    const commandId = await runShellScript(id, { commands: ['sleep 20'], executionTimeout: ['1'] });

    expect(await finished(commandId, id)).toMatchObject({
      Status: 'TimedOut',
      StatusDetails: 'ExecutionTimedOut',
      ResponseCode: 137,
    });
  });

  it('fails on a stand-in instance, saying why, instead of running anything on this machine', async () => {
    await startPlane({ agent: standInAgent() });
    const id = await oneInstance();

    const commandId = await runShellScript(id, { commands: ['touch /tmp/should-not-exist'] });

    expect(await finished(commandId, id)).toMatchObject({
      Status: 'Failed',
      ResponseCode: 1,
      StandardErrorContent: expect.stringContaining('stand-in instance with no operating system'),
    });
  });
});

describe('eventual consistency of command invocations', () => {
  it('answers InvocationDoesNotExist for an unknown command or instance, with no message', async () => {
    await startPlane();
    const id = await oneInstance();
    const commandId = await probe(id);
    await finished(commandId, id);

    for (const input of [
      { CommandId: '11111111-2222-3333-4444-555555555555', InstanceId: id },
      { CommandId: commandId, InstanceId: 'i-0123456789abcdef0' },
    ]) {
      await expect(ssm.send(new GetCommandInvocationCommand(input))).rejects.toMatchObject({
        name: 'InvocationDoesNotExist',
        // The SDK's text for an error that came with no message.
        message: 'UnknownError',
        $metadata: { httpStatusCode: 400 },
      });
    }
  });

  it('hides a new invocation from GetCommandInvocation and ListCommandInvocations for the propagation delay', async () => {
    // 50 simulated seconds at 100x: half a real second.
    await startPlane({
      invocationVisibilitySeconds: 50,
      agent: () =>
        new Promise((resolve) =>
          setTimeout(() => resolve({ exitCode: 0, stdout: '', stderr: '', timedOut: false }), 2_000),
        ),
    });
    const id = await oneInstance();

    const commandId = await probe(id);

    await expect(
      ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: id })),
    ).rejects.toMatchObject({ name: 'InvocationDoesNotExist' });
    const early = await ssm.send(new ListCommandInvocationsCommand({ CommandId: commandId }));
    expect(early.CommandInvocations).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 600));
    const later = await ssm.send(new ListCommandInvocationsCommand({ CommandId: commandId }));
    expect(later.CommandInvocations?.map((i) => i.Status)).toEqual(['InProgress']);
    await expect(
      ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: id })),
    ).resolves.toMatchObject({ Status: 'InProgress' });
  });

  it('shows a new invocation at once when the propagation delay is configured as zero', async () => {
    await startPlane({ invocationVisibilitySeconds: 0 });
    const id = await oneInstance();

    const commandId = await probe(id);

    const { CommandInvocations } = await ssm.send(
      new ListCommandInvocationsCommand({ CommandId: commandId }),
    );
    expect(CommandInvocations).toHaveLength(1);
  });
});

describe('delivery timeout', () => {
  it('refuses a TimeoutSeconds outside 30–2592000 with ValidationException', async () => {
    await startPlane();
    const id = await oneInstance();

    for (const [timeout, bound] of [
      [29, 'greater than or equal to 30'],
      [2_592_001, 'less than or equal to 2592000'],
    ] as const) {
      await expect(probe(id, timeout)).rejects.toMatchObject({
        name: 'ValidationException',
        message: `1 validation error detected: Value '${timeout}' at 'timeoutSeconds' failed to satisfy constraint: Member must have value ${bound}`,
      });
    }
  });

  it('times out a command whose agent stays offline: TimedOut, DeliveryTimedOut, response code -1', async () => {
    await startPlane();
    const id = await oneInstance();
    // The instance's agent loses its connection (a stopped instance's does).
    plane.ssm.agentOffline(id);

    // 30 simulated seconds at 100x: 0.3 s.
    const commandId = await probe(id, 30);

    const early = await ssm.send(new ListCommandInvocationsCommand({ CommandId: commandId }));
    expect(early.CommandInvocations?.map((i) => i.Status) ?? []).not.toContain('TimedOut');
    expect(await finished(commandId, id)).toMatchObject({
      Status: 'TimedOut',
      StatusDetails: 'DeliveryTimedOut',
      ResponseCode: -1,
    });
  });

  it('delivers a waiting command when the agent comes back before the delivery timeout', async () => {
    await startPlane();
    const id = await oneInstance();
    const agent = plane.ssm.managedInstances()[0]?.agent;
    plane.ssm.agentOffline(id);
    const commandId = await probe(id, 600);

    await new Promise((resolve) => setTimeout(resolve, 100));
    plane.ssm.registerInstance(id, {}, agent as NonNullable<typeof agent>);

    expect(await finished(commandId, id)).toMatchObject({ Status: 'Success', ResponseCode: 0 });
  });

  it('refuses commands to a terminated instance with InvalidInstanceId', async () => {
    await startPlane();
    const id = await oneInstance();
    plane.ssm.agentOffline(id, true);

    await expect(probe(id)).rejects.toMatchObject({ name: 'InvalidInstanceId' });
  });
});

/** Each call's outcome: its error's name and message, or 'accepted'. */
async function outcomes(cases: readonly [string, Promise<unknown>][]): Promise<string[][]> {
  return Promise.all(
    cases.map(([what, call]) =>
      call.then(
        () => [what, 'accepted'],
        (error: Error) => [what, error.name, error.message],
      ),
    ),
  );
}

// 'UnknownError' is the SDK's text for an error that came with no message.
describe("AWS's errors", () => {
  it("refuses AWS-RunShellScript's bad parameters with InvalidParameters and no message", async () => {
    await startPlane();
    const id = await oneInstance();
    const send = (parameters: Record<string, string[]>) =>
      ssm.send(
        new SendCommandCommand({
          DocumentName: 'AWS-RunShellScript',
          InstanceIds: [id],
          Parameters: parameters,
        }),
      );

    const answers = await outcomes([
      ['no commands', send({})],
      ['an unknown parameter', send({ commands: ['true'], user: ['root'] })],
      ['a timeout past 48 h', send({ commands: ['true'], executionTimeout: ['172801'] })],
      ['a timeout of 0', send({ commands: ['true'], executionTimeout: ['0'] })],
    ]);

    expect(answers.map(([, ...answer]) => answer)).toEqual(
      Array(4).fill(['InvalidParameters', 'UnknownError']),
    );
  });

  it('answers each failure with the code and message AWS gives', async () => {
    await startPlane();
    const id = await oneInstance();
    const send = (input: Partial<ConstructorParameters<typeof SendCommandCommand>[0]>) =>
      ssm.send(new SendCommandCommand({ DocumentName: PROBE, InstanceIds: [id], ...input }));
    const cases: [string, Promise<unknown>, string, string][] = [
      ['an unknown parameter', send({ Parameters: { user: ['root'] } }), 'InvalidParameters', 'UnknownError'],
      [
        'a value outside the pattern',
        send({ Parameters: { level: ['10'] } }),
        'InvalidParameters',
        'UnknownError',
      ],
      [
        'an unknown document',
        send({ DocumentName: 'AWS-Nothing' }),
        'InvalidDocument',
        'Document AWS-Nothing does not exist',
      ],
      [
        'an unknown instance',
        send({ InstanceIds: ['i-0123456789abcdef0'] }),
        'InvalidInstanceId',
        'Instances [[i-0123456789abcdef0]] not in a valid state for account 123456789012',
      ],
      [
        'no instance id',
        ssm.send(
          new GetCommandInvocationCommand({ CommandId: 'c', InstanceId: undefined as unknown as string }),
        ),
        'ValidationException',
        "1 validation error detected: Value null at 'instanceId' failed to satisfy constraint: Member must not be null",
      ],
      [
        'MaxResults above 50',
        ssm.send(new ListCommandsCommand({ MaxResults: 51 })),
        'ValidationException',
        "1 validation error detected: Value '51' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 50",
      ],
      [
        'an unknown parameter name',
        ssm.send(new GetParameterCommand({ Name: '/missing' })),
        'ParameterNotFound',
        'UnknownError',
      ],
      [
        'an unknown parameter type',
        ssm.send(new PutParameterCommand({ Name: '/p', Value: 'v', Type: 'Number' as 'String' })),
        'ValidationException',
        "1 validation error detected: Value 'Number' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SecureString, StringList, String]",
      ],
    ];

    const answers = await outcomes(cases.map(([what, call]) => [what, call]));

    expect(answers).toEqual(cases.map(([what, , code, message]) => [what, code, message]));
  });
});

describe('document versions', () => {
  /** A document whose description names its version; the agent answers with the description it ran. */
  const versioned = (label: string) =>
    JSON.stringify({
      schemaVersion: '2.2',
      description: label,
      mainSteps: [{ action: 'aws:runShellScript', name: 'run', inputs: { runCommand: ['true'] } }],
    });

  async function versionsWorld(): Promise<string> {
    await startPlane({
      agent: async ({ documentContent }) => ({
        exitCode: 0,
        stdout: (JSON.parse(documentContent) as { description: string }).description,
        stderr: '',
        timedOut: false,
      }),
    });
    return oneInstance();
  }

  /** Sends the Versioned document with `version` (or none); what the run printed and the version the command reports. */
  async function ran(instanceId: string, version?: string): Promise<[string, string]> {
    const { Command } = await ssm.send(
      new SendCommandCommand({
        DocumentName: 'Versioned',
        InstanceIds: [instanceId],
        ...(version === undefined ? {} : { DocumentVersion: version }),
      }),
    );
    const invocation = await finished(Command?.CommandId as string, instanceId);
    return [invocation.StandardOutputContent ?? '', invocation.DocumentVersion ?? ''];
  }

  it('runs the version a command was sent with; UpdateDocument adds a version, UpdateDocumentDefaultVersion makes it the default', async () => {
    const id = await versionsWorld();
    const created = await ssm.send(
      new CreateDocumentCommand({ Name: 'Versioned', Content: versioned('one'), DocumentType: 'Command' }),
    );

    const updated = await ssm.send(
      new UpdateDocumentCommand({ Name: 'Versioned', Content: versioned('two') }),
    );
    const beforeDefault = await Promise.all([ran(id), ran(id, '$LATEST'), ran(id, '1')]);
    const defaulted = await ssm.send(
      new UpdateDocumentDefaultVersionCommand({ Name: 'Versioned', DocumentVersion: '2' }),
    );
    const afterDefault = await Promise.all([ran(id), ran(id, '$DEFAULT'), ran(id, '1')]);
    const described = await ssm.send(new DescribeDocumentCommand({ Name: 'Versioned' }));
    const first = await ssm.send(new GetDocumentCommand({ Name: 'Versioned', DocumentVersion: '1' }));

    expect(created.DocumentDescription).toMatchObject({
      DocumentVersion: '1',
      LatestVersion: '1',
      DefaultVersion: '1',
    });
    expect(updated.DocumentDescription).toMatchObject({
      DocumentVersion: '2',
      LatestVersion: '2',
      DefaultVersion: '1',
    });
    expect(beforeDefault).toEqual([
      ['one', '$DEFAULT'],
      ['two', '$LATEST'],
      ['one', '1'],
    ]);
    expect(defaulted.Description).toEqual({ Name: 'Versioned', DefaultVersion: '2' });
    expect(afterDefault).toEqual([
      ['two', '$DEFAULT'],
      ['two', '$DEFAULT'],
      ['one', '1'],
    ]);
    expect(described.Document).toMatchObject({
      Name: 'Versioned',
      DocumentVersion: '2',
      DefaultVersion: '2',
      LatestVersion: '2',
      HashType: 'Sha256',
      Status: 'Active',
      DocumentType: 'Command',
    });
    expect(first).toMatchObject({ DocumentVersion: '1', Content: versioned('one') });
  });

  it('refuses what AWS refuses: unchanged content, an unknown or non-latest version, a default outside the versions', async () => {
    await versionsWorld();
    await ssm.send(new CreateDocumentCommand({ Name: 'Versioned', Content: versioned('one') }));
    await ssm.send(new UpdateDocumentCommand({ Name: 'Versioned', Content: versioned('two') }));

    const answers = await outcomes([
      ['unchanged', ssm.send(new UpdateDocumentCommand({ Name: 'Versioned', Content: versioned('two') }))],
      [
        'not the latest',
        ssm.send(
          new UpdateDocumentCommand({ Name: 'Versioned', Content: versioned('three'), DocumentVersion: '1' }),
        ),
      ],
      ['no such version', ssm.send(new GetDocumentCommand({ Name: 'Versioned', DocumentVersion: '9' }))],
      [
        'default to $LATEST',
        ssm.send(new UpdateDocumentDefaultVersionCommand({ Name: 'Versioned', DocumentVersion: '$LATEST' })),
      ],
      ['no such document', ssm.send(new DescribeDocumentCommand({ Name: 'Nothing' }))],
      ['taken name', ssm.send(new CreateDocumentCommand({ Name: 'Versioned', Content: versioned('x') }))],
      [
        "Amazon's",
        ssm.send(new UpdateDocumentCommand({ Name: 'AWS-RunShellScript', Content: versioned('mine') })),
      ],
    ]);

    expect(answers.map(([what, code]) => [what, code])).toEqual([
      ['unchanged', 'DuplicateDocumentContent'],
      ['not the latest', 'InvalidDocumentVersion'],
      ['no such version', 'InvalidDocumentVersion'],
      ['default to $LATEST', 'ValidationException'],
      ['no such document', 'InvalidDocument'],
      ['taken name', 'DocumentAlreadyExists'],
      ["Amazon's", 'InvalidDocumentOperation'],
    ]);
  });

  it('keeps at most 1000 versions of a document: the next update is refused with DocumentVersionLimitExceeded', async () => {
    await versionsWorld();
    plane.ssm.putDocument('Versioned', versioned('0'));
    for (let n = 1; n < 1000; n++) plane.ssm.updateDocument('Versioned', versioned(String(n)));

    const answers = await outcomes([
      ['the 1001st', ssm.send(new UpdateDocumentCommand({ Name: 'Versioned', Content: versioned('1000') }))],
    ]);

    expect(answers).toEqual([
      [
        'the 1001st',
        'DocumentVersionLimitExceeded',
        'The document has too many versions. Delete one or more document versions and try again.',
      ],
    ]);
  });
});
