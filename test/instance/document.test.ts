/**
 * The SelfDeploy document: built from the contract and the script file, and run the way the
 * SSM agent runs it, for real, against a real sshd, git and Capistrano.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DOCUMENT_PARAMETER_NAMES, DOCUMENT_PARAMETERS } from '../../functions/shared/document-contract';
import {
  buildSelfDeployDocument,
  DEFAULT_SCRIPT_PATH,
  documentShell,
  SCRIPT_PARAMETER_NAMES,
  SELF_DEPLOY_EXIT_CODES,
  type SelfDeployDocument,
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
  ])('rejects the impossible option %j', (options, message) => {
    expect(() => buildSelfDeployDocument(options)).toThrow(message);
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
