import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

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
    expect(figures.burst.runs[0]).toMatchObject({ lost: 0, deadLetters: 0 });
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
