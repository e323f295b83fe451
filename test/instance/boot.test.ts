/**
 * self-deploy.sh waits (bounded) for the instance's boot to finish before it checks its
 * prerequisites: the SSM agent comes online while user data may still install git or Ruby,
 * or clone the deploy checkout.
 */
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  renameSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { delimiter, join } from 'node:path';
import { type Instance, startInstance } from './instance';

jest.setTimeout(60_000);

let instance: Instance;

beforeAll(async () => {
  instance = await startInstance('sd-boot');
});

afterAll(async () => {
  await instance?.stop();
});

/**
 * A PATH whose first directory holds `fakes` (name → sh script) and links to every other
 * command of this machine's PATH except those named in `hidden`.
 */
function pathWith(name: string, fakes: Record<string, string>, hidden: readonly string[] = []): string {
  const bin = join(instance.dir, name);
  mkdirSync(bin, { recursive: true });
  chmodSync(bin, 0o755);
  for (const [command, script] of Object.entries(fakes)) {
    writeFileSync(join(bin, command), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
  }
  if (hidden.length === 0) return `${bin}${delimiter}${process.env.PATH}`;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!existsSync(dir)) continue;
    for (const command of readdirSync(dir)) {
      const link = join(bin, command);
      if (hidden.includes(command) || existsSync(link)) continue;
      symlinkSync(join(dir, command), link);
    }
  }
  return bin;
}

test('a boot check that finishes later holds the run until then: the checkout user data clones is there', async () => {
  // What user data does on a real instance: the deploy checkout appears only once it ran.
  const staged = join(instance.dir, 'staged-checkout');
  const deployPath = join(instance.dir, 'srv', 'cloned-by-user-data');
  instance.app.cloneTo(staged);

  const run = await instance.run({
    SELFDEPLOY_DEPLOY_PATH: deployPath,
    SELFDEPLOY_BOOT_WAIT_SECONDS: '30',
    SELFDEPLOY_BOOT_CHECK_COMMAND: `sleep 2 && mv ${staged} ${deployPath}`,
  });

  expect(run.exitCode).toBe(0);
  expect(run.stdout).toContain(
    `boot: waiting up to 30s for boot check (sleep 2 && mv ${staged} ${deployPath})`,
  );
  expect(run.stdout.indexOf('boot: finished')).toBeLessThan(run.stdout.indexOf('fetching origin'));
  expect(run.result).toMatchObject({ status: 'success', revision: instance.app.head() });
  expect(run.result.seconds).toBeGreaterThanOrEqual(2);
  renameSync(deployPath, staged);
});

test('a boot check that fails ends the run with exit 11 and its output', async () => {
  const run = await instance.run({
    SELFDEPLOY_BOOT_CHECK_COMMAND: 'echo "status: error" && exit 1',
  });

  expect(run.exitCode).toBe(11);
  expect(run.stderr).toContain('boot check (echo "status: error" && exit 1) exited with 1: status: error');
  expect(run.stdout).not.toContain('fetching origin');
  expect(run.result).toMatchObject({ status: 'failure', exitCode: 11 });
});

test('a boot that does not finish within SELFDEPLOY_BOOT_WAIT_SECONDS ends the run with exit 11', async () => {
  const began = Date.now();

  const run = await instance.run({
    SELFDEPLOY_BOOT_CHECK_COMMAND: 'sleep 30',
    SELFDEPLOY_BOOT_WAIT_SECONDS: '1',
  });

  expect(run.exitCode).toBe(11);
  expect(run.stderr).toContain('boot did not finish within 1s (boot check (sleep 30))');
  expect(Date.now() - began).toBeLessThan(10_000);
});

test('built in: cloud-init status --wait; "done with recoverable errors" (exit 2) counts as booted, an error does not', async () => {
  const recoverable = await instance.run({
    PATH: pathWith('cloud-init-2', { 'cloud-init': 'echo "status: done"; exit 2' }),
  });
  const error = await instance.run({
    PATH: pathWith('cloud-init-1', { 'cloud-init': 'echo "status: error"; exit 1' }),
  });

  expect(recoverable.exitCode).toBe(0);
  expect(recoverable.stdout).toContain('boot: waiting up to 600s for cloud-init status --wait');
  expect(recoverable.stderr).toContain('cloud-init finished with recoverable errors: status: done');
  expect(error.exitCode).toBe(11);
  expect(error.stderr).toContain('cloud-init status --wait exited with 1: status: error');
});

test('built in without cloud-init: systemd running or degraded is booted, offline has no boot, maintenance fails', async () => {
  const systemctl = (state: string) =>
    pathWith(`systemctl-${state}`, { systemctl: `echo ${state}; [ ${state} = running ]` }, ['cloud-init']);

  const degraded = await instance.run({ PATH: systemctl('degraded') });
  const offline = await instance.run({ PATH: systemctl('offline') });
  const maintenance = await instance.run({ PATH: systemctl('maintenance') });

  expect(degraded.exitCode).toBe(0);
  expect(degraded.stdout).toContain('boot: waiting up to 600s for systemctl is-system-running --wait');
  expect(degraded.stdout).toContain('boot: finished');
  expect(offline.exitCode).toBe(0);
  expect(offline.stdout).toContain('boot: systemd is offline here; nothing to wait for');
  expect(maintenance.exitCode).toBe(11);
  expect(maintenance.stderr).toContain(
    'the system is maintenance (systemctl is-system-running --wait exited with 1)',
  );
});

test('by default on this machine (a container or CI: no cloud-init, systemd offline or absent) there is nothing to wait for', async () => {
  const run = await instance.run();

  expect(run.exitCode).toBe(0);
  expect(run.stdout).toMatch(
    /^self-deploy: boot: (systemd is offline here; |neither cloud-init nor systemd here; |finished)/m,
  );
  expect(run.result.seconds).toBeLessThan(30);
});

test('SELFDEPLOY_BOOT_WAIT_SECONDS=0 does not wait at all', async () => {
  const run = await instance.run({
    SELFDEPLOY_BOOT_WAIT_SECONDS: '0',
    SELFDEPLOY_BOOT_CHECK_COMMAND: 'exit 1',
  });

  expect(run.exitCode).toBe(0);
  expect(run.stdout).toContain('boot: not waiting (SELFDEPLOY_BOOT_WAIT_SECONDS=0)');
});
