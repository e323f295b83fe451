import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  GetCommandInvocationCommand,
  ListCommandsCommand,
  SSMClient,
  UpdateDocumentCommand,
  UpdateDocumentDefaultVersionCommand,
} from '@aws-sdk/client-ssm';
import type { SQSEvent } from 'aws-lambda';
import { build } from 'esbuild';
import { LAST_DEPLOY_TAG, REVISION_TAG } from '../../functions/shared/deploy-tags';
import { COMMAND_STATUS_DETAIL_TYPE } from '../../functions/shared/event-patterns';
import { orchestratorBuildOptions } from '../../infra/bundling';
import { ControlPlane } from '../../scripts/local/control-plane/control-plane';
import { LocalLambda } from '../../scripts/local/lambda';
import { DOCUMENT_NAME, type LocalRun } from '../../scripts/local/local-run';
import { CAPFILE_WITH_TASKS, localRuns, planeClientConfig } from './support';

// A stack update while commands are in flight, through the local control plane and the real
// handler: the construct's document is updated as a new version made the default, and the
// function gets new code (the bundle the construct deploys, where the run had the sources)
// and a new configuration, while a deploy sent with the old version still runs.
jest.setTimeout(240_000);

const start = localRuns();

/** What the new document version prints first, so a run shows which version it ran. */
const V2_MARKER = 'selfdeploy document: the stack update';

/** A commit whose deploy waits (bounded) until the file `gate` exists, so it is in flight for as long as a test needs. */
function commitWithGate(local: LocalRun, gate: string): void {
  const app = local.app;
  if (!app) throw new Error('real deploys only');
  app.commit('A deploy that waits for its gate', {
    'lib/capistrano/tasks/gate.rake': [
      'namespace :deploy do',
      '  task :gate do',
      '    on roles(:all) do',
      `      execute "for i in $(seq 1 900); do test -e ${gate} && exit 0; sleep 0.2; done; exit 1"`,
      '    end',
      '  end',
      '  after :updated, :gate',
      'end',
      '',
    ].join('\n'),
    Capfile: CAPFILE_WITH_TASKS,
  });
}

/** The run's SelfDeploy commands sent to `instanceId`. */
function commandsOn(local: LocalRun, instanceId: string) {
  return local.plane.ssm
    .commands()
    .filter(
      (c) => c.documentName === DOCUMENT_NAME && c.invocations.some((i) => i.instanceId === instanceId),
    );
}

describe('a stack update while commands are in flight', () => {
  it('completes a command sent with the previous document version under the new function, and runs the new version afterwards', async () => {
    const local = await start({
      // The first instance's agent is there at once; the second's only well after the update.
      agentDelaySeconds: (_instance, index) => (index === 1 ? 250 : 5),
      config: { agentWaitSeconds: 300 },
    });
    const gate = join(local.dir, 'gate-open');
    commitWithGate(local, gate);
    const ssm = new SSMClient(planeClientConfig(local.plane));
    try {
      local.scaleTo(2);
      const [first, second] = [...local.records.keys()];
      if (!first || !second) throw new Error('two launches expected');
      // The first deploy runs (held at its gate); the second launch waits for its agent in the queue.
      await local.waitFor(
        'the first deploy to run and the second launch to wait in the queue',
        () =>
          commandsOn(local, first)[0]?.invocations[0]?.status === 'InProgress' &&
          commandsOn(local, second).length === 0 &&
          local.orchestrator.queue.counts().delayed + local.orchestrator.queue.counts().visible > 0,
        60_000,
      );

      // Prepare: the stack update as CloudFormation makes it (document updateMethod NewVersion),
      // and the function's new code: the orchestrator bundled as the construct bundles it
      // (CommonJS here, as the local function loads its handler with require).
      const modulePath = join(local.dir, 'updated-function', 'index.js');
      await build({ ...orchestratorBuildOptions(modulePath), format: 'cjs' });
      const v1 = local.plane.ssm.documentVersion(DOCUMENT_NAME, '1');
      const v2 = JSON.parse(v1.content) as { mainSteps: { inputs: { runCommand: string[] } }[] };
      v2.mainSteps[0]?.inputs.runCommand.unshift(`echo '${V2_MARKER}'`);
      const updated = await ssm.send(
        new UpdateDocumentCommand({
          Name: DOCUMENT_NAME,
          Content: JSON.stringify(v2),
          DocumentVersion: '$LATEST',
        }),
      );
      await ssm.send(
        new UpdateDocumentDefaultVersionCommand({
          Name: DOCUMENT_NAME,
          DocumentVersion: updated.DocumentDescription?.DocumentVersion,
        }),
      );
      // No invocation runs between this check and the update: whatever the queue holds now was
      // written by the previous configuration.
      await local.waitFor(
        'a moment when no invocation runs and the wait is queued',
        () =>
          local.orchestrator.lambda.concurrency === 0 &&
          local.orchestrator.queue.counts().delayed + local.orchestrator.queue.counts().visible > 0,
        60_000,
      );
      const updatedAt = Date.now();
      local.orchestrator.updateConfig(
        { ...local.orchestrator.config, agentWaitSeconds: 600 },
        { modulePath },
      );

      // Act: the old deploy finishes; a launch after the update.
      writeFileSync(gate, '');
      await local.waitFor(
        'the first instance to complete',
        () => local.records.get(first)?.result !== undefined,
        90_000,
      );
      local.scaleTo(3);
      const third = [...local.records.keys()][2] as string;
      await local.waitFor(
        'every instance to complete',
        () => [second, third].every((id) => local.records.get(id)?.result !== undefined),
        120_000,
      );

      // Assess: the first command ran version 1 and was completed CONTINUE by the new function.
      expect(updated.DocumentDescription).toMatchObject({ DocumentVersion: '2', DefaultVersion: '1' });
      expect([first, second, third].map((id) => local.records.get(id)?.result)).toEqual([
        'CONTINUE',
        'CONTINUE',
        'CONTINUE',
      ]);
      const [firstCommand] = commandsOn(local, first);
      expect(firstCommand?.ranVersion).toBe(1);
      const firstRun = await ssm.send(
        new GetCommandInvocationCommand({ CommandId: firstCommand?.id, InstanceId: first }),
      );
      expect(firstRun.DocumentVersion).toBe('$DEFAULT');
      expect(firstRun.StandardOutputContent).not.toContain(V2_MARKER);
      const completedFirst = local.orchestrator.lambda.invocations.filter((record) =>
        JSON.stringify(record.event).includes(`${firstCommand?.id}`),
      );
      expect(completedFirst.map((record) => record.revision)).toContain(2);
      expect(
        completedFirst.filter(
          (record) => record.revision === 1 && JSON.stringify(record.event).includes('Success'),
        ),
      ).toEqual([]);

      // The launches sent after the update ran version 2.
      for (const id of [second, third]) {
        const [command] = commandsOn(local, id);
        expect(command?.ranVersion).toBe(2);
        const run = await ssm.send(
          new GetCommandInvocationCommand({ CommandId: command?.id, InstanceId: id }),
        );
        expect(run.StandardOutputContent).toContain(V2_MARKER);
      }
      const listed = await ssm.send(new ListCommandsCommand({ CommandId: firstCommand?.id }));
      expect(listed.Commands?.[0]?.DocumentVersion).toBe('$DEFAULT');

      // The wait queued before the update was handled by the new function.
      const waitsAfter = local.orchestrator.lambda.invocations.filter(
        (record) => record.revision === 2 && sentBefore(record.event, second, updatedAt),
      );
      expect(waitsAfter.length).toBeGreaterThan(0);
    } finally {
      ssm.destroy();
      if (!existsSync(gate)) writeFileSync(gate, '');
    }
  });
});

/** Whether an SQS batch holds a message about `instanceId` sent before `before` (epoch ms). */
function sentBefore(event: unknown, instanceId: string, before: number): boolean {
  const records = (event as Partial<SQSEvent>).Records ?? [];
  return records.some(
    (record) => record.body.includes(instanceId) && Number(record.attributes.SentTimestamp) < before,
  );
}

describe('the local function updated', () => {
  const CONSUMER = join(__dirname, '..', 'fixtures', 'lambda', 'sqs-consumer.ts');

  it('runs new invocations in new environments with the new configuration, while a running one finishes on the old', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stack-update-'));
    const plane = await ControlPlane.start({ timeScale: 20 });
    const [before, after] = [join(dir, 'before.jsonl'), join(dir, 'after.jsonl')];
    const lambda = await LocalLambda.start({
      modulePath: CONSUMER,
      env: { ...plane.env(), HOLD_MS: '1500', TRACE_FILE: before },
      logFile: join(dir, 'function.log'),
      clock: plane.clock,
    });
    try {
      // Prepare: an invocation running on the first configuration.
      const running = lambda.invoke({ Records: [] });
      // Awaited below; a failure before then must not go unhandled.
      running.catch(() => undefined);
      await waitUntil(() => existsSync(before) && readFileSync(before, 'utf8').includes('"start"'));

      // Act
      lambda.update({ env: { ...plane.env(), HOLD_MS: '0', TRACE_FILE: after } });
      await lambda.invoke({ Records: [] });
      await running;
      await lambda.invoke({ Records: [] });

      // Assess: the first ran on revision 1 and wrote to the old trace; the later two on a new environment of revision 2.
      const old = lambda.invocations.filter((record) => record.revision === 1);
      const updated = lambda.invocations.filter((record) => record.revision === 2);
      expect([old.length, updated.length]).toEqual([1, 2]);
      expect(new Set(updated.map((record) => record.environment))).toEqual(
        new Set([updated[0]?.environment]),
      );
      expect(updated[0]?.environment).not.toBe(old[0]?.environment);
      expect(updated[0]?.initMs).toBeDefined();
      expect(readFileSync(before, 'utf8').trim().split('\n')).toHaveLength(2);
      expect(readFileSync(after, 'utf8').trim().split('\n')).toHaveLength(4);
    } finally {
      await lambda.stop();
      await plane.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

async function waitUntil(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('a late status event', () => {
  it('leaves the tags of a newer run as they are: a replayed result of an older run writes neither tag', async () => {
    const local = await start({ deploy: {} });
    local.scaleTo(1);
    const [instanceId] = [...local.records.keys()];
    if (!instanceId) throw new Error('a launch expected');
    const tagsOf = () =>
      Object.fromEntries(
        local.plane.ec2
          .tags()
          .filter((tag) => tag.resourceId === instanceId)
          .map((tag) => [tag.key, tag.value]),
      );
    await local.waitFor('the launch deploy to be tagged', () => LAST_DEPLOY_TAG in tagsOf(), 60_000);
    await local.idle(30_000);
    const [command] = commandsOn(local, instanceId);
    const finished = local.plane.bus.published.find(
      (event) =>
        event['detail-type'] === COMMAND_STATUS_DETAIL_TYPE &&
        (event.detail as Record<string, unknown>)['command-id'] === command?.id &&
        (event.detail as Record<string, unknown>).status === 'Success',
    );
    if (!command || !finished) throw new Error("the launch command's final status event expected");
    // Prepare: a newer run (a minute after the launch's) recorded its result since.
    const newer = {
      [REVISION_TAG]: 'f'.repeat(40),
      [LAST_DEPLOY_TAG]: `success 0 ${new Date(command.requestedAt + 60_000).toISOString()} ${'f'.repeat(40)}`,
    };
    local.plane.ec2.createTags(
      [instanceId],
      Object.entries(newer).map(([key, value]) => ({ key, value })),
    );
    const handled = local.orchestrator.lambda.invocations.length;

    // Act: the launch's status event delivered once more, late.
    local.plane.bus.put(finished);
    await local.waitFor(
      'the late event to be handled',
      () =>
        local.orchestrator.lambda.invocations
          .slice(handled)
          .some((record) => JSON.stringify(record.event).includes(command.id)),
      30_000,
    );
    await local.idle(30_000);

    // Assess
    expect(tagsOf()).toMatchObject(newer);
  });
});
