/**
 * The SelfDeploy document: built from the contract and the script file, and run the way the
 * SSM agent runs it, for real, against a real sshd, git and Capistrano.
 */
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DOCUMENT_PARAMETER_NAMES, DOCUMENT_PARAMETERS } from '../../functions/shared/document-contract';
import {
  buildSelfDeployDocument,
  DEFAULT_SCRIPT_PATH,
  documentShell,
  SCRIPT_PARAMETER_NAMES,
  SELF_DEPLOY_EXIT_CODES,
  type SelfDeployDocument,
  SelfDeployDocumentOptionsError,
} from '../../infra/document';
import { InvalidParametersError, runDocument } from '../../scripts/local/run-document';
import { type Instance, parseResult, startInstance } from './instance';

jest.setTimeout(60_000);

describe('building the document', () => {
  test('declares every contract parameter with its pattern, default and description', () => {
    const document = buildSelfDeployDocument();

    expect(Object.keys(document.parameters)).toEqual(DOCUMENT_PARAMETER_NAMES);
    for (const name of DOCUMENT_PARAMETER_NAMES) {
      expect(document.parameters[name]).toMatchObject({
        type: 'String',
        allowedPattern: DOCUMENT_PARAMETERS[name].pattern,
        default: DOCUMENT_PARAMETERS[name].default,
        description: DOCUMENT_PARAMETERS[name].description,
      });
    }
  });

  test('script parameters arrive as environment variables; only executionTimeout is substituted, into timeoutSeconds', () => {
    const document = buildSelfDeployDocument();
    const shell = documentShell(document);

    for (const name of SCRIPT_PARAMETER_NAMES) {
      expect(document.parameters[name].interpolationType).toBe('ENV_VAR');
      expect(shell).toContain(`"\${SSM_${name}-}"`);
    }
    expect(shell).not.toContain('{{');
    expect(document.mainSteps[0].inputs.timeoutSeconds).toBe('{{ executionTimeout }}');
  });

  test('embeds the script file verbatim', () => {
    const shell = documentShell(buildSelfDeployDocument());

    expect(shell).toContain(readFileSync(DEFAULT_SCRIPT_PATH, 'utf8'));
  });

  test('refuses a script whose patterns drifted from the contract', () => {
    const drifted = join(process.env.TMPDIR ?? '/tmp', `self-deploy-drifted-${process.pid}.sh`);
    writeFileSync(
      drifted,
      readFileSync(DEFAULT_SCRIPT_PATH, 'utf8').replace(
        `readonly PATTERN_SELFDEPLOY_ENVIRONMENT='${DOCUMENT_PARAMETERS.environment.pattern}'`,
        "readonly PATTERN_SELFDEPLOY_ENVIRONMENT='^.*$'",
      ),
    );

    expect(() => buildSelfDeployDocument({ scriptPath: drifted })).toThrow(
      /does not match functions\/shared\/document-contract\.ts.*PATTERN_SELFDEPLOY_ENVIRONMENT/,
    );
  });

  test.each([
    [{ deployCommand: 'cap deploy\nrm -rf /' }, /deployCommand/],
    [{ deployCommand: 'echo {{ revision }}' }, /deployCommand/],
    [{ branches: { production: 'main;id' } }, /branches/],
    [{ branches: { 'Prod Env': 'main' } }, /branches/],
    [{ pinnedRevisionParameterName: '/app/$(id)' }, /pinnedRevisionParameterName/],
    [{ lockTimeoutSeconds: -1 }, /lockTimeoutSeconds/],
    [{ stateDirectory: 'relative' }, /stateDirectory/],
    [{ bootWaitSeconds: 7201 }, /bootWaitSeconds/],
    [{ bootWaitSeconds: 1.5 }, /bootWaitSeconds/],
    [{ bootCheckCommand: 'cloud-init status --wait\nreboot' }, /bootCheckCommand/],
    [{ healthCheckAttempts: 0 }, /healthCheckAttempts/],
    [{ healthCheckIntervalSeconds: 61 }, /healthCheckIntervalSeconds/],
  ])('rejects the impossible option %j', (options, message) => {
    expect(() => buildSelfDeployDocument(options)).toThrow(message);
  });

  test('reports every problem of the options at once, in one line', () => {
    const build = () =>
      buildSelfDeployDocument({
        deployCommand: 'cap\ndeploy',
        lockTimeoutSeconds: -1,
        bootWaitSeconds: 9000,
        healthCheckAttempts: 0,
      });

    expect(build).toThrow(SelfDeployDocumentOptionsError);
    expect(build).toThrow(
      /^SelfDeployDocumentOptions\.deployCommand: [^\n]*; SelfDeployDocumentOptions\.lockTimeoutSeconds: [^\n]*; SelfDeployDocumentOptions\.bootWaitSeconds: [^\n]*; SelfDeployDocumentOptions\.healthCheckAttempts: [^\n]*$/,
    );
  });

  test('boot-wait, health-check and sudo settings reach the script with their defaults', () => {
    expect(settingsOf(buildSelfDeployDocument())).toMatchObject({
      SELFDEPLOY_BOOT_WAIT_SECONDS: '600',
      SELFDEPLOY_BOOT_CHECK_COMMAND: '',
      SELFDEPLOY_HEALTH_CHECK_ATTEMPTS: '10',
      SELFDEPLOY_HEALTH_CHECK_INTERVAL: '3',
      SELFDEPLOY_ALLOW_SUDO: '0',
    });
    expect(
      settingsOf(
        buildSelfDeployDocument({
          bootWaitSeconds: 0,
          bootCheckCommand: "test -e '/run/app ready'",
          healthCheckAttempts: 100,
          healthCheckIntervalSeconds: 60,
          allowSudoAppUser: true,
        }),
      ),
    ).toMatchObject({
      SELFDEPLOY_BOOT_WAIT_SECONDS: '0',
      SELFDEPLOY_BOOT_CHECK_COMMAND: "test -e '/run/app ready'",
      SELFDEPLOY_HEALTH_CHECK_ATTEMPTS: '100',
      SELFDEPLOY_HEALTH_CHECK_INTERVAL: '60',
      SELFDEPLOY_ALLOW_SUDO: '1',
    });
  });

  test('build-time settings survive shell quoting unchanged', () => {
    const deployCommand = `echo "it's $SELFDEPLOY_ENVIRONMENT" \\ done`;
    const shell = documentShell(buildSelfDeployDocument({ deployCommand }));
    const line = shell.split('\n').find((l) => l.startsWith('SELFDEPLOY_DEPLOY_COMMAND=')) ?? '';

    const value = execFileSync('sh', ['-c', `${line}\nprintf %s "$SELFDEPLOY_DEPLOY_COMMAND"`], {
      encoding: 'utf8',
    });

    expect(value).toBe(deployCommand);
  });
});

/** The build-time settings the document's shell exports, as the script sees them. */
function settingsOf(document: SelfDeployDocument): Record<string, string> {
  const assignments = documentShell(document)
    .split('\n')
    .filter((line) => /^SELFDEPLOY_[A-Z_]+='.*'; export SELFDEPLOY_[A-Z_]+$/.test(line));
  const output = execFileSync('sh', ['-c', `${assignments.join('\n')}\nenv -0`], {
    encoding: 'utf8',
    env: {},
  });
  return Object.fromEntries(
    output
      .split('\0')
      .filter((entry) => entry.startsWith('SELFDEPLOY_'))
      .map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]),
  );
}

describe('the wrapper around the script: success needs a result', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'selfdeploy-wrapper-'));
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  /** A document embedding a stand-in script: the contract's lines, then `body`. */
  const standIn = (name: string, body: string): SelfDeployDocument => {
    const contractLines = readFileSync(DEFAULT_SCRIPT_PATH, 'utf8')
      .split('\n')
      .filter((line) => /^readonly (PATTERN|DEFAULT)_SELFDEPLOY_/.test(line));
    const scriptPath = join(dir, `${name}.sh`);
    writeFileSync(scriptPath, ['#!/usr/bin/env bash', ...contractLines, body, ''].join('\n'));
    return buildSelfDeployDocument({ scriptPath, stateDirectory: join(dir, 'state') });
  };
  const noResultLine =
    'selfdeploy: error: the script exited 0 but produced no result (it writes one as its last act); counted as a failure';

  test('a script that exits 0 after writing a success result succeeds', async () => {
    const document = standIn(
      'success',
      `printf '%s\\n' '{"status":"success","exitCode":0}' >"$SELFDEPLOY_RESULT_FILE"`,
    );

    const result = await runDocument({ document });

    expect(result).toMatchObject({ exitCode: 0, stderr: '' });
  });

  test.each([
    ['writes no result', 'exit 0'],
    [
      'writes a failure result',
      `printf '%s\\n' '{"status":"failure","exitCode":9}' >"$SELFDEPLOY_RESULT_FILE"`,
    ],
    ['writes an empty result file', ': >"$SELFDEPLOY_RESULT_FILE"'],
  ])('a script that exits 0 but %s fails the run with exit code 14', async (_, body) => {
    const result = await runDocument({ document: standIn('no-result', body) });

    expect(result.exitCode).toBe(SELF_DEPLOY_EXIT_CODES.noResult);
    expect(result.stderr.trim()).toBe(noResultLine);
  });

  test("a script's own failure keeps its exit code", async () => {
    const result = await runDocument({ document: standIn('fails', 'exit 9') });

    expect(result).toMatchObject({ exitCode: SELF_DEPLOY_EXIT_CODES.deployCommand, stderr: '' });
  });

  test('a failed write of the script fails the run with exit code 14 and runs none of it', async () => {
    // A cat that writes the first lines and then fails, as on a full /tmp: the partial
    // script would define functions and exit 0.
    const bin = join(dir, 'bin');
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'cat'), '#!/bin/sh\nhead -n 40\nexit 1\n');
    chmodSync(join(bin, 'cat'), 0o755);

    const result = await runDocument({
      document: buildSelfDeployDocument({ stateDirectory: join(dir, 'state') }),
      env: { PATH: `${bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` },
    });

    expect(result.exitCode).toBe(SELF_DEPLOY_EXIT_CODES.noResult);
    expect(result.stderr).toMatch(
      /^selfdeploy: error: writing the script to \S+ failed \(is the disk full\?\); nothing was run\n$/,
    );
    expect(result.stdout).toBe('');
  });

  test('no temporary directory for the script fails the run with exit code 14', async () => {
    const result = await runDocument({
      document: buildSelfDeployDocument({ stateDirectory: join(dir, 'state') }),
      env: { TMPDIR: join(dir, 'missing') },
    });

    expect(result.exitCode).toBe(SELF_DEPLOY_EXIT_CODES.noResult);
    // mktemp's own line says why; ours says what it means.
    expect(result.stderr.trim().split('\n').at(-1)).toBe(
      'selfdeploy: error: cannot create a temporary directory for the script (mktemp -d failed); nothing was run',
    );
  });

  test("an agent's copy of the shell cut short runs none of it and does not succeed", async () => {
    const document = buildSelfDeployDocument({ stateDirectory: join(dir, 'state') });
    const step = document.mainSteps[0];
    const lines = step.inputs.runCommand;
    const cutShort: SelfDeployDocument = {
      ...document,
      mainSteps: [
        {
          ...step,
          inputs: { ...step.inputs, runCommand: lines.slice(0, Math.floor(lines.length / 2)) },
        },
      ],
    };
    const scratch = join(dir, 'cut-short-tmp');
    mkdirSync(scratch);

    const result = await runDocument({ document: cutShort, env: { TMPDIR: scratch } });

    expect(result.exitCode).not.toBe(0);
    expect(readdirSync(scratch)).toEqual([]);
  });
});

describe('running the document the way the agent does', () => {
  let instance: Instance;
  let document: SelfDeployDocument;

  beforeAll(async () => {
    instance = await startInstance('sd-document');
    document = buildSelfDeployDocument({ stateDirectory: instance.stateDir });
  });
  afterAll(async () => {
    await instance?.stop();
  });

  /** What SendCommand would carry, plus the simulated instance's sshd. */
  const run = (extra: Partial<Parameters<typeof runDocument>[0]> = {}) =>
    runDocument({
      document,
      parameters: { appUser: instance.user.name, deployPath: instance.deployPath, appPath: instance.appPath },
      env: {
        SELFDEPLOY_SSH_PORT: String(instance.sshd.port),
        SELFDEPLOY_HOST_KEY_DIR: instance.sshd.hostKeyDir,
      },
      ...extra,
    });

  test('deploys the branch head with the parameter defaults', async () => {
    const result = await run();

    expect(result.exitCode).toBe(0);
    expect(instance.currentRevision()).toBe(instance.app.head());
    expect(parseResult(result.stdout)).toMatchObject({
      status: 'success',
      environment: 'production',
      revision: instance.app.head(),
      skipped: false,
    });
  });

  test('an agent without SSM_<name> variables gets one clear line and exit code 3', async () => {
    const result = await run({ parameterVariables: false });

    expect(result.exitCode).toBe(SELF_DEPLOY_EXIT_CODES.missingPrerequisite);
    expect(result.stderr.trim()).toBe(
      'selfdeploy: error: document parameters did not arrive as SSM_<name> environment variables; SSM Agent 3.3.2746.0 or later is required',
    );
  });

  test('SendCommand refuses a parameter outside its allowedPattern', async () => {
    await expect(run({ parameters: { environment: 'production;id' } })).rejects.toThrow(
      InvalidParametersError,
    );
  });

  test('a value that got past a loosened pattern is still only data: the script rejects it, nothing executes', async () => {
    const marker = join(instance.dir, 'pwned');
    const loosened: SelfDeployDocument = {
      ...document,
      parameters: {
        ...document.parameters,
        environment: { ...document.parameters.environment, allowedPattern: '.*' },
      },
    };

    const result = await run({
      document: loosened,
      parameters: { environment: `production$(touch ${marker})";touch ${marker};"` },
    });

    expect(result.exitCode).toBe(SELF_DEPLOY_EXIT_CODES.invalidInput);
    expect(result.stderr).toContain('SELFDEPLOY_ENVIRONMENT');
    expect(existsSync(marker)).toBe(false);
  });

  test('the execution timeout stops the script with the agent exit code 137', async () => {
    const slow = buildSelfDeployDocument({
      stateDirectory: instance.stateDir,
      deployCommand: 'sleep 30',
    });
    instance.app.commit('A version whose deploy hangs');

    // executionTimeout is at least 10 s; the runner's override keeps the test short.
    const result = await run({ document: slow, timeoutSeconds: 2 });

    expect(result).toMatchObject({ exitCode: 137, timedOut: true });
  });
});
