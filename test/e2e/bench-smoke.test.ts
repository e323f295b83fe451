import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TOP_LEVEL_SETTINGS } from '../../functions/shared/group-settings';
import { REQUESTS_PER_DEPLOY, sharedLoad } from '../../scripts/bench/shared-load';

// The smoke run takes about a minute alone; other tiers share the two cores meanwhile.
jest.setTimeout(300_000);

const ROOT = join(__dirname, '..', '..');

function bench(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--require', require.resolve('tsx/cjs'), 'scripts/bench/run.ts', ...args],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once('exit', (code) => resolve({ code, output }));
  });
}

test('the benchmark runs every section end to end and writes its figures as JSON', async () => {
  const out = mkdtempSync(join(tmpdir(), 'selfdeploy-bench-smoke-'));
  try {
    const { code, output } = await bench(['--smoke', '--out', out]);

    expect({ code, output }).toMatchObject({ code: 0 });
    for (const heading of ['### 1. Lambda artifact', '### 2. Burst', '### 3. Cost', '### 4. Instance side']) {
      expect(output).toContain(heading);
    }
    const [file] = readdirSync(out);
    const figures = JSON.parse(readFileSync(join(out, file ?? ''), 'utf8'));
    const [burst] = figures.burst.runs;
    expect(burst).toMatchObject({ lost: 0, failedInvocations: 0, deadLetters: { bus: 0, queue: 0 } });
    // The queue bounds the executions; every agent's SendCommand comes after it registered.
    for (const peak of [burst.peakConcurrency.launches, burst.peakConcurrency.statuses]) {
      expect(peak).toBeGreaterThan(0);
      expect(peak).toBeLessThanOrEqual(TOP_LEVEL_SETTINGS.maxConcurrency.default);
    }
    expect(burst.onlineToSendSeconds.p50).toBeGreaterThanOrEqual(0);
    expect(burst.onlineToSendSeconds.p95).toBeGreaterThanOrEqual(burst.onlineToSendSeconds.p50);
    // Shared-service load: every deploy that started counted, at the model's requests per deploy.
    expect(burst.sharedLoad.deploys).toBeGreaterThanOrEqual(burst.instances);
    expect(burst.sharedLoad.gitHost.requests).toBe(
      burst.sharedLoad.deploys * burst.sharedLoad.gitHost.perDeploy,
    );
    expect(burst.sharedLoad.parameterStore.peakPerSecond).toBeGreaterThan(0);
    // SQS is counted apart from the SSM and Auto Scaling budget.
    const budgeted = Object.entries(burst.callsByOperation as Record<string, number>)
      .filter(([key]) => /^(ssm|autoscaling) [A-Za-z]+$/.test(key))
      .reduce((total, [, count]) => total + count, 0);
    expect(burst.callsPerBootstrap.mean).toBeCloseTo(budgeted / burst.instances, 2);
    expect(output).toContain('agent online → SendCommand');
    expect(output).toContain('Parameter Store requests/s');
    expect(figures.cost.runs).toHaveLength(3);
    expect(figures.instance.selfdeploy.unchanged).toBeLessThan(figures.instance.plain.unchanged);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('a malformed rate limit is refused with a usage message', async () => {
  const { code, output } = await bench(['--rate', 'SendCommand=fast']);

  expect(code).toBe(2);
  expect(output).toContain('--rate must look like SendCommand=10/20');
});

test('the shared-service load counts each deploy at its start: the busiest second, and the mean over the starts', () => {
  // Three deploys within one second, a fourth 9 s after the first.
  const load = sharedLoad([1000, 1400, 1999, 10_000]);

  const perDeploy = REQUESTS_PER_DEPLOY.gitHost.count;
  expect(load.deploys).toBe(4);
  expect(load.gitHost).toEqual({
    perDeploy,
    requests: 4 * perDeploy,
    peakPerSecond: 3 * perDeploy,
    meanPerSecond: Math.round(((4 * perDeploy) / 9) * 10) / 10,
  });
  expect(load.parameterStore.peakPerSecond).toBe(3 * REQUESTS_PER_DEPLOY.parameterStore.count);
});
