/**
 * Two runs for one lifecycle wait can start at the same moment on a fresh instance (two
 * copies of a launch handled by two executions at once). Whatever they do before the lock
 * must not fail when the other run does it first, or the loser reports a failure, a verdict
 * that abandons an instance whose deploy would have succeeded, instead of exiting 13.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Instance, startInstance } from './instance';

jest.setTimeout(90_000);

let instance: Instance;

beforeAll(async () => {
  instance = await startInstance('sd-race');
});

afterAll(async () => {
  await instance?.stop();
});

test('a run whose ssh directory another run made a moment before it goes on to deploy', async () => {
  const stateDir = join(instance.dir, 'fresh-state');
  const sshDir = join(stateDir, 'ssh');
  const bin = join(instance.dir, 'race-bin');
  mkdirSync(bin, { recursive: true });
  chmodSync(bin, 0o755);
  const realMkdir = execFileSync('sh', ['-c', 'command -v mkdir'], { encoding: 'utf8' }).trim();
  // The other run's mkdir lands between this run's check for the directory and its own mkdir.
  writeFileSync(
    join(bin, 'mkdir'),
    `#!/bin/sh\nfor last; do :; done\n[ "$last" = "${sshDir}" ] && ${realMkdir} -p "$last"\nexec ${realMkdir} "$@"\n`,
    { mode: 0o755 },
  );

  const run = await instance.run({
    PATH: `${bin}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
    SELFDEPLOY_STATE_DIR: stateDir,
  });

  expect(run.stderr).not.toContain('exited with');
  expect(run.exitCode).toBe(0);
  expect(run.result).toMatchObject({ status: 'success' });
});
