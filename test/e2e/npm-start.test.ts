import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { userExists } from './support';

jest.setTimeout(120_000);

const ROOT = join(__dirname, '..', '..');
// The stand-in deploy keeps this about npm start itself; real deploys are in real-deploy.test.ts.
const FAST = ['--stand-in', '100', '--agent-delay', '2'];

function start(args: string[]): { child: ChildProcess; output: () => string; exit: Promise<number | null> } {
  const child = spawn(
    process.execPath,
    ['--require', require.resolve('tsx/cjs'), 'scripts/local/start.ts', ...args],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exit };
}

async function waitForOutput(read: () => string, text: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!read().includes(text)) {
    if (Date.now() > deadline) throw new Error(`no "${text}" in:\n${read()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('npm start', () => {
  it('scales out, redeploys, prints both summaries, exits 0 and leaves no run directory behind', async () => {
    const run = start([...FAST, '--instances', '3']);

    const code = await run.exit;

    const output = run.output();
    expect(code).toBe(0);
    expect(output).toContain('OK: every instance ended as expected.');
    const scaleOut = output.slice(output.indexOf('Scale-out'), output.indexOf('Redeploy of'));
    expect(scaleOut.match(/^i-[0-9a-f]{17}\s+InService/gm)).toHaveLength(3);
    const dir = /run directory (\S+)/.exec(output)?.[1] ?? '';
    expect(dir).toMatch(/selfdeploy-/);
    expect(existsSync(dir)).toBe(false);
  });

  it('with real deploys and --fail 1, abandons exactly one instance and replaces it', async () => {
    const run = start(['--fail', '1', '--instances', '3']);

    const code = await run.exit;

    const output = run.output();
    expect(output).toContain('OK: every instance ended as expected.');
    expect(code).toBe(0);
    const scaleOut = output.slice(output.indexOf('Scale-out'), output.indexOf('Redeploy of'));
    expect(scaleOut.match(/^i-[0-9a-f]{17}\s+abandoned \(deploy failed\), replaced/gm)).toHaveLength(1);
    expect(scaleOut.match(/^i-[0-9a-f]{17}\s+InService/gm)).toHaveLength(3);
  });

  it('on Ctrl-C mid-run, removes the run directory and the application user it created', async () => {
    const run = start(['--instances', '1']);
    await waitForOutput(run.output, 'scaling out', 40_000);
    const user = /application user (\S+);/.exec(run.output())?.[1] ?? '';
    const dir = /run directory (\S+)/.exec(run.output())?.[1] ?? '';
    const existed = userExists(user);

    run.child.kill('SIGINT');
    const code = await run.exit;

    expect(code).toBe(130);
    expect(run.output()).toContain('interrupted: cleaning up');
    expect(existed).toBe(true);
    expect(existsSync(dir)).toBe(false);
    // As root the run created the user; otherwise it is the developer's own and stays.
    expect(userExists(user)).toBe(process.getuid?.() !== 0);
  });

  it('exits non-zero with a clear message on a bad option', async () => {
    const run = start(['--instances', 'many']);

    const code = await run.exit;

    expect(code).toBe(2);
    expect(run.output()).toContain('--instances must be a number from 1 to 1000, got many');
  });

  it('with --keep, leaves a control plane the AWS SDK can use until Ctrl-C', async () => {
    const run = start([...FAST, '--instances', '2', '--keep']);
    await waitForOutput(run.output, 'waiting for Ctrl-C', 40_000);
    const printed = (name: string) => new RegExp(`export ${name}=(\\S+)`).exec(run.output())?.[1] ?? '';
    const client = new AutoScalingClient({
      endpoint: printed('AWS_ENDPOINT_URL_AUTO_SCALING'),
      region: printed('AWS_REGION'),
      credentials: {
        accessKeyId: printed('AWS_ACCESS_KEY_ID'),
        secretAccessKey: printed('AWS_SECRET_ACCESS_KEY'),
      },
    });

    const { AutoScalingGroups } = await client.send(
      new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: ['web'] }),
    );
    client.destroy();
    run.child.kill('SIGINT');
    const code = await run.exit;

    expect(AutoScalingGroups?.[0]?.Instances?.map((i) => i.LifecycleState)).toEqual([
      'InService',
      'InService',
    ]);
    expect(code).toBe(0);
    const dir = /the run directory is kept: (\S+)/.exec(run.output())?.[1] ?? '';
    expect(existsSync(join(dir, 'orchestrator.log'))).toBe(true);
    rmSync(dir, { recursive: true, force: true });
  });
});
