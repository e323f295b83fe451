import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { LAUNCH_DETAIL_TYPE } from '../../functions/shared/event-patterns';
import { buildSelfDeployDocument, documentShell } from '../../infra/document';
import { standInAgent } from '../../scripts/local/agents';
import type { AwsEvent } from '../../scripts/local/control-plane/event-bus';
import { BOOT_FINISHED, orchestrationDir } from '../../scripts/local/deploy-agent';
import { FIDELITY, fidelitySection, README_PATH, readmeSection } from '../../scripts/local/fidelity';
import { APP_PATH, DEPLOY_PATH, LocalRun } from '../../scripts/local/local-run';
import { InvalidParametersError, runDocument, STOPPED_EXIT_CODE } from '../../scripts/local/run-document';
import { userExists } from './support';

// The local world itself: who the simulated instances deploy as, and how they boot.
jest.setTimeout(60_000);

const runs: LocalRun[] = [];

afterEach(async () => {
  for (const run of runs.splice(0)) await run.stop();
});

async function start(...options: Parameters<typeof LocalRun.start>): Promise<LocalRun> {
  const run = await LocalRun.start(...options);
  runs.push(run);
  return run;
}

const isLaunch = (event: AwsEvent) => event['detail-type'] === LAUNCH_DETAIL_TYPE;

const LOCAL_DIR = join(__dirname, '..', '..', 'scripts', 'local');

/** The code of scripts/local, file by file: comments and the text of string literals left out. */
function localCode(): { file: string; code: string }[] {
  return readdirSync(LOCAL_DIR, { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts'))
    .map((file) => ({
      file,
      code: readFileSync(join(LOCAL_DIR, file), 'utf8')
        .split('\n')
        .filter((line) => !/^\s*(\/\/|\/\*|\*)/.test(line))
        .map((line) =>
          line.replace(/'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`[^`]*`/g, "''").replace(/\/\/.*$/, ''),
        )
        .join('\n'),
    }));
}

describe('the local world', () => {
  it('gives each run an application user of its own and removes it when the run stops', async () => {
    const [first, second] = await Promise.all([start(), start()]);
    const users = [first.appUser, second.appUser];
    const existed = users.map(userExists);

    await first.stop();
    await second.stop();

    if (process.getuid?.() === 0) {
      // As root: one new unprivileged user per run, named within Linux's 32 characters.
      expect(users[0]).not.toBe(users[1]);
      for (const user of users) expect(user).toMatch(/^sd-app-[0-9a-f]{8}$/);
      expect(existed).toEqual([true, true]);
      expect(users.map(userExists)).toEqual([false, false]);
    } else {
      // Not root: the developer's own user, which the run must leave alone.
      expect(users).toEqual([userInfo().username, userInfo().username]);
      expect(users.map(userExists)).toEqual([true, true]);
    }
  });

  it("gives its instances a document whose boot check waits for the instance's own boot, and allows sudo only for a developer's own user", async () => {
    const local = await start();

    const settings = local.document.mainSteps[0].inputs.runCommand.join('\n');

    expect(settings).toMatch(
      /^SELFDEPLOY_BOOT_CHECK_COMMAND='until \[ -e .*AWS_SSM_INSTANCE_ID.*boot-finished/m,
    );
    expect(settings).toContain(`SELFDEPLOY_ALLOW_SUDO='${process.getuid?.() === 0 ? '0' : '1'}'`);
  });

  it('brings the agent online before boot has cloned the application: a deploy that does not wait for boot fails', async () => {
    // Launch events are lost, so only the commands sent here run. 50 simulated seconds of
    // boot at 10x: the agent is online at once, boot finishes 5 s later.
    const local = await start({ agentDelaySeconds: 0, bootDelaySeconds: 50, faults: { drop: isLaunch } });
    // The document as built without a boot check: on this machine nothing says boot is running.
    const { bootCheckCommand, ...noBootCheck } = local.documentOptions;
    expect(bootCheckCommand).toBeDefined();
    local.plane.ssm.putDocument('NoBootWait', JSON.stringify(buildSelfDeployDocument(noBootCheck)));
    local.scaleTo(1);
    const id = local.instances()[0]?.id as string;
    const root = join(local.dir, 'instances', id);
    const deploy = () =>
      local.plane.ssm.sendCommand({
        DocumentName: 'NoBootWait',
        InstanceIds: [id],
        Parameters: { appUser: [local.appUser], appPath: [APP_PATH], deployPath: [DEPLOY_PATH] },
      });
    const finished = (commandId: string) => () =>
      ['Success', 'Failed'].includes(local.plane.ssm.command(commandId)?.status ?? '');
    await local.waitFor('the agent online', () => local.plane.ssm.managedInstances().length === 1, 5_000);

    const early = deploy();
    await local.waitFor('the early deploy to end', finished(early.id), 20_000);
    const bootedBefore = existsSync(join(root, BOOT_FINISHED));
    await local.waitFor('boot to finish', () => existsSync(join(root, BOOT_FINISHED)), 20_000);
    const late = deploy();
    await local.waitFor('the deploy after boot to end', finished(late.id), 30_000);

    expect(bootedBefore).toBe(false);
    const [earlyRun] = early.invocations;
    expect(earlyRun).toMatchObject({ status: 'Failed', responseCode: 3 });
    expect(earlyRun?.stderr).toContain('is not a git clone');
    expect(late.invocations[0]).toMatchObject({ status: 'Success', responseCode: 0 });
    expect(local.revisionOf(id)).toBe(local.app?.head());
  });

  it('runs the SelfDeploy document as built: the script each instance ran is the document, its state under its own root', async () => {
    const local = await start();
    local.scaleTo(2);
    await local.waitFor('2 instances InService', () => local.settled(), 45_000);

    const ids = local.instances().map((instance) => instance.id);
    expect(ids).toHaveLength(2);
    for (const id of ids) {
      const root = join(local.dir, 'instances', id);
      const [command] = local.plane.ssm.commands().filter((c) => c.instanceIds.includes(id));
      const script = join(orchestrationDir(root, command?.id ?? ''), '_script.sh');
      expect(readFileSync(script, 'utf8')).toBe(documentShell(local.document));
      expect(existsSync(join(root, 'var', 'lib', 'selfdeploy', 'lock'))).toBe(true);
    }
  });

  it('checks the parameters an agent runs the document with as SendCommand checks them, naming every problem in one line', async () => {
    const local = await start({ deploy: {} });
    const parameters = { environment: 'production;id', migrate: 'maybe', colour: 'blue' };

    const refused = await runDocument({ document: local.document, parameters }).catch(
      (error: unknown) => error,
    );
    const send = () =>
      local.plane.ssm.sendCommand({
        DocumentName: 'SelfDeploy',
        Targets: [{ Key: 'tag:none', Values: ['none'] }],
        Parameters: Object.fromEntries(Object.entries(parameters).map(([name, value]) => [name, [value]])),
      });

    expect(refused).toBeInstanceOf(InvalidParametersError);
    const message = (refused as Error).message;
    expect(message).not.toContain('\n');
    expect(message).toContain('the document declares no parameter colour');
    expect(message).toContain('parameter environment value "production;id" does not match');
    expect(message).toContain('parameter migrate value "maybe" does not match');
    expect(send).toThrow(expect.objectContaining({ code: 'InvalidParameters' }));
  });

  it("ends a stand-in run stopped by its execution timeout or by a cancel with the agent's stop code, as a real run", async () => {
    const agent = standInAgent({ durationMs: 5_000 });
    const execution = (executionTimeout: string, signal: AbortSignal) => ({
      instanceId: 'i-0123456789abcdef0',
      commandId: 'c',
      documentName: 'SelfDeploy',
      documentContent: '{}',
      parameters: { executionTimeout },
      signal,
    });
    const cancel = new AbortController();

    const timedOut = agent(execution('0.05', new AbortController().signal));
    const cancelled = agent(execution('3600', cancel.signal));
    cancel.abort();

    await expect(timedOut).resolves.toMatchObject({ exitCode: STOPPED_EXIT_CODE, timedOut: true });
    await expect(cancelled).resolves.toMatchObject({ exitCode: STOPPED_EXIT_CODE, timedOut: false });
  });

  it("states SSM's output limits and the agent's exit code for a stopped script once in its code", () => {
    const code = localCode();
    const definitions = (literal: RegExp) =>
      code.flatMap(({ file, code }) => (code.match(literal) ?? []).map(() => file));

    expect(definitions(/\b24_?000\b/g)).toEqual(['control-plane/ssm.ts']);
    expect(definitions(/\b8_?000\b/g)).toEqual(['control-plane/ssm.ts']);
    expect(definitions(/\b2_?500\b/g)).toEqual(['control-plane/ssm.ts']);
    expect(definitions(/\b137\b/g)).toEqual(['run-document.ts']);
    expect(definitions(/\.allowedPattern\b[^;]*\.test\(/g)).toEqual(['control-plane/ssm.ts']);
  });

  it("keeps its README's table of what is modelled equal to the table in code, naming every operation served", () => {
    const readme = readFileSync(README_PATH, 'utf8');
    // The cases of the two dispatchers (runQuery, runJson), up to their default.
    const served = ['auto-scaling-protocol.ts', 'ssm-protocol.ts'].flatMap((file) => {
      const source = readFileSync(
        join(__dirname, '..', '..', 'scripts', 'local', 'control-plane', file),
        'utf8',
      );
      const dispatcher = source.slice(source.indexOf('export function run'));
      const cases = dispatcher.slice(0, dispatcher.indexOf('    default:'));
      return [...cases.matchAll(/^ {4}case '([A-Za-z]+)':/gm)].map((match) => match[1]);
    });
    const named = FIDELITY.flatMap((row) => row.operation.split(' / '));

    expect(readmeSection(readme)).toBe(fidelitySection());
    expect(served).toEqual(expect.arrayContaining(['DescribeScalingActivities', 'SendCommand']));
    expect(served.filter((operation) => !named.includes(operation as string))).toEqual([]);
  });
});
