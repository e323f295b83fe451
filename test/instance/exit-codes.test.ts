/**
 * The script's exit codes are functions/shared/exit-codes.ts's, in its constants and in its
 * --help; and each code the script itself can end with is one a run really ends with.
 */

import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { SELF_DEPLOY_EXIT_CODES } from '../../functions/shared/exit-codes';
import { type Instance, runScript, SCRIPT, startInstance } from './instance';

jest.setTimeout(60_000);

const CODES: Record<string, number> = SELF_DEPLOY_EXIT_CODES;

/** missingPrerequisite → EXIT_MISSING_PREREQUISITE */
const constantName = (code: string) => `EXIT_${code.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

test('every EXIT_* constant of the script is a code of SELF_DEPLOY_EXIT_CODES, and every code has its constant', () => {
  const script = readFileSync(SCRIPT, 'utf8');
  const constants = Object.fromEntries(
    [...script.matchAll(/^readonly (EXIT_[A-Z_]+)=(\d+)$/gm)].map((m) => [m[1], Number(m[2])]),
  );

  const expected = Object.fromEntries(
    Object.entries(CODES).map(([name, code]) => [constantName(name), code]),
  );

  expect(constants).toEqual(expected);
});

test('--help lists exactly the codes of SELF_DEPLOY_EXIT_CODES', async () => {
  const help = await runScript({ PATH: process.env.PATH ?? '' }, ['--help']);
  const section = help.stdout.split('Exit codes:\n')[1] ?? '';

  const listed = [...section.matchAll(/^ {2}(\d+) +\S/gm)].map((m) => Number(m[1]));

  expect(help.exitCode).toBe(0);
  expect(listed).toEqual(Object.values(CODES).sort((a, b) => a - b));
});

describe('each failure ends with its own code', () => {
  let instance: Instance;

  beforeAll(async () => {
    instance = await startInstance('sd-codes');
  });

  afterAll(async () => {
    await instance?.stop();
  });

  /** A directory first on PATH holding `command` as the sh `script`. */
  function pathWithFake(command: string, script: string): string {
    const bin = join(instance.dir, `fake-${command}`);
    mkdirSync(bin, { recursive: true });
    chmodSync(bin, 0o755);
    writeFileSync(join(bin, command), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
    return `${bin}:${process.env.PATH}`;
  }

  test('5: localhost SSH cannot be used (no sshd on the port)', async () => {
    // A port nothing listens on, as when sshd is stopped.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    await new Promise((resolve) => server.close(resolve));

    const run = await instance.run({ SELFDEPLOY_SSH_PORT: String(port) });

    expect(run.exitCode).toBe(SELF_DEPLOY_EXIT_CODES.localhostTrust);
    expect(run.stderr).toContain(`cannot SSH to 127.0.0.1:${port} with the localhost key`);
  });

  test('6: Parameter Store cannot be read (access denied)', async () => {
    const run = await instance.run({
      PATH: pathWithFake(
        'aws',
        'echo "An error occurred (AccessDeniedException) when calling the GetParameter operation" >&2; exit 254',
      ),
      SELFDEPLOY_PINNED_REVISION_PARAMETER: '/sample/{environment}/revision',
    });

    expect(run.exitCode).toBe(SELF_DEPLOY_EXIT_CODES.parameterStore);
    expect(run.stderr).toContain('AccessDeniedException');
    expect(run.stderr).toContain('cannot read pinned revision parameter /sample/production/revision');
  });

  test('8: gem install fails', async () => {
    // A new state directory has no record of an earlier gem install.
    const run = await instance.run({
      SELFDEPLOY_STATE_DIR: join(instance.dir, 'state-gems'),
      SELFDEPLOY_GEM_INSTALL_COMMAND: 'echo "Could not find gem" >&2; exit 5',
    });

    expect(run.exitCode).toBe(SELF_DEPLOY_EXIT_CODES.gemInstall);
    expect(run.stderr).toContain('Could not find gem');
    expect(run.stderr).toContain('gem install (echo "Could not find gem" >&2; exit 5) failed');
  });

  test('10: the deploy command succeeds without deploying', async () => {
    const run = await instance.run({ SELFDEPLOY_DEPLOY_COMMAND: 'true' });

    expect(run.exitCode).toBe(SELF_DEPLOY_EXIT_CODES.verification);
    expect(run.stderr).toContain(`current/REVISION is missing, not ${instance.app.head()}`);
  });

  test('0, and the result file holds the result line, written last', async () => {
    const resultFile = join(instance.dir, 'result.json');

    const run = await instance.run({ SELFDEPLOY_RESULT_FILE: resultFile });

    expect(run.exitCode).toBe(SELF_DEPLOY_EXIT_CODES.success);
    const last = run.stdout.trimEnd().split('\n').at(-1) ?? '';
    expect(`SELFDEPLOY_RESULT ${readFileSync(resultFile, 'utf8')}`).toBe(`${last}\n`);
    expect(JSON.parse(readFileSync(resultFile, 'utf8'))).toMatchObject({ status: 'success', exitCode: 0 });
  });
});
