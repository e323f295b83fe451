import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import {
  COMPACT_ABOVE_INSTANCES,
  FLAG_OPTIONS,
  HELP,
  NUMBER_OPTIONS,
  parseOptions,
} from '../../scripts/local/start-options';
import { startLocal, userExists, waitForOutput } from './support';

jest.setTimeout(120_000);

const ROOT = join(__dirname, '..', '..');
// The stand-in deploy keeps this about npm start itself; real deploys are in real-deploy.test.ts.
const FAST = ['--stand-in', '100', '--agent-delay', '2'];

const start = startLocal;

/** The output of step `n` (its heading to the next step's, or to `done`). */
function step(output: string, n: number): string {
  const from = output.search(new RegExp(`^\\[[ \\d.]+s\\] ${n}\\. `, 'm'));
  const next = output.slice(from + 1).search(/^\[[ \d.]+s\] (\d\. |done$)/m);
  return from < 0 ? '' : output.slice(from, next < 0 ? undefined : from + 1 + next);
}

/** The table rows of a step: instance, lifecycle, short SHA, last deploy, note. */
function rows(section: string): string[][] {
  return [...section.matchAll(/^(i-[0-9a-f]{17}) {2,}(\S+) {2,}(\S+) {2,}(.*?)(?: {2,}(.*))?$/gm)].map((m) =>
    m.slice(1).map((cell) => (cell ?? '').trim()),
  );
}

/** Asserts what each step of the release flow shows; the first release, the good and the bad SHAs. */
function expectReleaseFlow(output: string, instances: number) {
  const first =
    /release ([0-9a-f]{40}) recorded by the first successful deploy/.exec(step(output, 1))?.[1] ?? '';
  expect(first).toMatch(/^[0-9a-f]{40}$/);

  const deploy = step(output, 2);
  const [, good = '', previous, canary] =
    /d-[a-z2-7]{12} promoted: release ([0-9a-f]{40}), previous ([0-9a-f]{40}); migrations ran on 1 instance\(s\): (i-[0-9a-f]{17})$/m.exec(
      deploy,
    ) ?? [];
  expect(previous).toBe(first);
  expect(good).not.toBe(first);
  expect(rows(deploy).map((r) => r[2])).toEqual(Array(instances).fill(good.slice(0, 7)));
  expect(
    rows(deploy)
      .filter((r) => r[4] === 'canary (migrate=true)')
      .map((r) => r[0]),
  ).toEqual([canary]);

  // The bad commit fails on the canary; the release stays the good SHA and the canary is back on it.
  const bad = step(output, 3);
  expect(bad).toMatch(
    new RegExp(
      `d-[a-z2-7]{12} failed on canary ${canary} \\(exit \\d+: .*\\); release kept at ${good}$`,
      'm',
    ),
  );
  expect(rows(bad).map((r) => r[2])).toEqual(Array(instances).fill(good.slice(0, 7)));
  expect(rows(bad).find((r) => r[0] === canary)?.[4]).toBe('canary: failed, restored to the release');

  // One more instance deploys the release, not the bad head.
  const more = step(output, 4);
  const joined = rows(more).filter((r) => r[4] === 'new');
  expect(joined.map((r) => r[2])).toEqual([good.slice(0, 7)]);
  expect(more).toContain(`${joined[0]?.[0]} deployed ${good.slice(0, 7)}: the release ${good}`);
  expect(rows(more).map((r) => r[2])).toEqual(Array(instances + 1).fill(good.slice(0, 7)));

  // Rollback: the first SHA again, promoted, with the good one as its previous.
  const rollback = step(output, 5);
  expect(rollback).toMatch(
    new RegExp(`d-[a-z2-7]{12} rollback promoted: release ${first}, previous ${good}$`, 'm'),
  );
  expect(rows(rollback).map((r) => r[2])).toEqual(Array(instances + 1).fill(first.slice(0, 7)));
  return { first, good, bad };
}

describe('npm start', () => {
  it('shows the release flow: first release, a deploy promoted, a bad commit kept off the release and off a new instance, a rollback; exits 0 and leaves no run directory behind', async () => {
    const run = start([...FAST, '--instances', '3']);

    const code = await run.exit;

    const output = run.output();
    expect(code).toBe(0);
    expect(output).toContain('OK: every instance ended as expected.');
    expect(rows(step(output, 1)).filter((r) => r[1] === 'InService')).toHaveLength(3);
    expectReleaseFlow(output, 3);
    const dir = /run directory (\S+)/.exec(output)?.[1] ?? '';
    expect(dir).toMatch(/selfdeploy-/);
    expect(existsSync(dir)).toBe(false);
  });

  it('with real deploys and --fail 1, abandons exactly one instance, replaces it, and the release flow holds', async () => {
    const run = start(['--fail', '1', '--instances', '3']);

    const code = await run.exit;

    const output = run.output();
    expect(output).toContain('OK: every instance ended as expected.');
    expect(code).toBe(0);
    const scaleOut = rows(step(output, 1));
    expect(scaleOut.filter((r) => r[4] === 'abandoned (deploy failed), replaced')).toHaveLength(1);
    expect(scaleOut.filter((r) => r[1] === 'InService')).toHaveLength(3);
    const { good } = expectReleaseFlow(output, 3);
    // The bad commit is the branch head: the new instance deployed the release instead.
    const head = /pushed ([0-9a-f]{7}), whose deploy fails/.exec(step(output, 3))?.[1] ?? '';
    expect(step(output, 4)).toMatch(
      new RegExp(`the release ${good}, not the branch head ${head}[0-9a-f]{33}$`, 'm'),
    );
  });

  it('on Ctrl-C mid-run, removes the run directory and the application user it created', async () => {
    const run = start(['--instances', '1']);
    await waitForOutput(run.output, '1. scale-out', 40_000);
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
    expect(run.output()).toBe('npm start: --instances must be a whole number from 1 to 1000, got many\n');
  });

  it.each([
    [['--instances', '-5'], 'npm start: --instances must be a whole number from 1 to 1000, got -5\n'],
    [['--port', '-1'], 'npm start: --port must be a whole number from 0 to 65535, got -1\n'],
    [
      ['--fail', '1.5', '--throttle', '2'],
      'npm start: --fail must be a whole number from 0 to 1000, got 1.5; --throttle must be a number from 0 to 0.9, got 2\n',
    ],
    [
      ['--instanses', '3'],
      /^npm start: Unknown option '--instanses'.*\(npm start -- --help lists the options\)\n$/,
    ],
  ])('answers %j with one line and exit 2', async (args, expected) => {
    const run = start(args);

    const code = await run.exit;

    expect(code).toBe(2);
    if (typeof expected === 'string') expect(run.output()).toBe(expected);
    else expect(run.output()).toMatch(expected);
  });

  it('answers a port in use with one line and exit 2, no stack trace', async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const { port } = busy.address() as { port: number };

    const run = start([...FAST, '--port', String(port)]);
    const code = await run.exit;
    busy.close();

    expect(code).toBe(2);
    const errors = run
      .output()
      .split('\n')
      .filter((line) => line.startsWith('npm start:'));
    expect(errors).toEqual([
      `npm start: port ${port} on 127.0.0.1 is in use: choose another --port, or leave it out for any free port`,
    ]);
    expect(run.output()).not.toMatch(/^\s+at /m);
  });

  it('prints --help as the option list the parser uses, each stated bound the bound it enforces', async () => {
    const run = start(['--help']);
    expect(await run.exit).toBe(0);
    expect(run.output()).toBe(HELP);

    const helped = [...HELP.matchAll(/^ {2}--([a-z-]+)(?: ([A-Z]+))?\s+(.*)$/gm)].map(
      ([, name, arg, text]) => ({
        name: name ?? '',
        arg,
        text: text ?? '',
      }),
    );
    expect(helped.map((o) => o.name).sort()).toEqual(
      [...NUMBER_OPTIONS, ...FLAG_OPTIONS].map((o) => o.name).sort(),
    );
    const camel = (name: string) => name.replace(/-(.)/g, (_, c: string) => c.toUpperCase());
    for (const option of helped) {
      if (option.arg === undefined) {
        if (option.name !== 'help') expect(parseOptions([`--${option.name}`])).toBeDefined();
        continue;
      }
      const [, whole, min, max, fallback] =
        /\((whole number )?([\d.]+)-([\d.]+)(?:, default ([\d.]+))?\)$/.exec(option.text) ?? [];
      const bounds = { min: Number(min), max: Number(max) };
      const accepts = (value: number) => {
        try {
          return parseOptions([`--${option.name}`, String(value)]) !== undefined;
        } catch {
          return false;
        }
      };
      const step = whole ? 1 : bounds.min === 0 ? 0.001 : bounds.min / 2;
      expect([option.name, accepts(bounds.min), accepts(bounds.max)]).toEqual([option.name, true, true]);
      expect([option.name, accepts(bounds.min - step), accepts(bounds.max + step)]).toEqual([
        option.name,
        false,
        false,
      ]);
      if (whole) expect([option.name, accepts(bounds.min + 0.5)]).toEqual([option.name, false]);
      const parsed = parseOptions([]) as unknown as Record<string, number | undefined>;
      expect([option.name, parsed[camel(option.name)]]).toEqual([
        option.name,
        fallback === undefined ? undefined : Number(fallback),
      ]);
    }
  });

  it(`above ${COMPACT_ABOVE_INSTANCES} instances, prints a counter at a bounded rate instead of a line per instance`, async () => {
    const run = start(['--stand-in', '50', '--agent-delay', '20', '--instances', '60']);

    const code = await run.exit;

    const output = run.output();
    expect(code).toBe(0);
    expect(output).not.toMatch(/^\[[ \d.]+s\] i-[0-9a-f]{17}/m);
    const counters =
      output.match(
        /^\[[ \d.]+s\] 60 instances: .*\(\d+ agent registering, \d+ deploying\), \d+ abandoned$/gm,
      ) ?? [];
    expect(counters.length).toBeGreaterThan(0);
    // Not a TTY: a line at most every 5 s, plus one when each phase ends.
    const seconds = Number(/^\[ *([\d.]+)s\] done$/m.exec(output)?.[1]);
    expect(counters.length).toBeLessThanOrEqual(Math.ceil(seconds / 5) + 3);
    expect(output).toContain('60 instances: 60 InService on');
    expect(output).toMatch(/^\[[ \d.]+s\] d-[a-z2-7]{12} rollback promoted: release [0-9a-f]{40}/m);
    expect(output).toContain('OK: every instance ended as expected.');
    expect(output.split('\n').length).toBeLessThan(60);
  });

  it('on SIGINT to the npm process itself, stops the run and removes its directory and user', async () => {
    const npm = spawn('npm', ['start', '--', '--instances', '1'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so a failure can still stop whatever npm started.
      detached: true,
    });
    let output = '';
    for (const stream of [npm.stdout, npm.stderr])
      stream?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    // Every process holding npm's output has exited: npm and whatever it started.
    const closed = new Promise<void>((resolve) => npm.once('close', () => resolve()));
    try {
      await waitForOutput(() => output, '1. scale-out', 40_000);
      const user = /application user (\S+);/.exec(output)?.[1] ?? '';
      const dir = /run directory (\S+)/.exec(output)?.[1] ?? '';
      const endpoint = /control plane (\S+);/.exec(output)?.[1] ?? '';

      npm.kill('SIGINT');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([closed, new Promise((resolve) => (timer = setTimeout(resolve, 30_000)))]);
      clearTimeout(timer);

      expect(output).toContain('interrupted: cleaning up');
      expect(existsSync(dir)).toBe(false);
      expect(userExists(user)).toBe(process.getuid?.() !== 0);
      await expect(fetch(endpoint)).rejects.toThrow();
    } finally {
      try {
        process.kill(-(npm.pid ?? 0), 'SIGINT');
      } catch {
        // Already gone, as it should be.
      }
    }
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

    // The release flow's extra instance has gone again: --instances is what is kept.
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
