/**
 * `npm run bench`: selfdeploy's numbers beside what a user would use instead, measured in
 * the same run (the machine may be shared and noisy: compare the ratios). Prints markdown
 * and writes the same figures as JSON to bench-results/. `npm run bench -- --help` lists
 * the options.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { measureArtifact } from './artifact';
import { type BurstFigures, type BurstSettings, measureBurst } from './burst';
import { type CostFigures, type CostSettings, measureCost } from './cost';
import { measureInstanceSide } from './instance-side';
import { DEFAULT_RATE_LIMITS, rateLimitsWith } from './rate-limits';
import { artifactSection, burstSection, costSection, instanceSection } from './report';

const HELP = `Usage: npm run bench -- [options]

Measures, each beside a baseline in the same run:
  1. the Lambda artifact (size, module init) beside a naive bundle
  2. burst scale-outs through the local control plane with rate limits: time, calls, peak
     executions, agent online to SendCommand, derived Parameter Store and git host load
  3. Lambda time and AWS calls per bootstrap as deploys get longer, beside a polling orchestrator
  4. the instance side (real sshd, git, Capistrano) beside the plain recipe

Options:
  --quick               a short run (under 3 minutes): one 100-instance burst, fewer repetitions
  --smoke               a tiny run that only shows every section works (for the test suite)
  --sections LIST       comma-separated sections to run, e.g. 2,3 (default: all)
  --rate OP=RATE/BURST  a rate limit for one API operation (calls per second / burst);
                        repeatable. Defaults (assumptions): ${Object.entries(DEFAULT_RATE_LIMITS)
                          .map(([op, l]) => `${op}=${l.ratePerSecond}/${l.burst}`)
                          .join(' ')}
  --agent-delay MIN-MAX seconds after launch until an agent is ready to register
                        (default 2-20; --smoke: 1-2)
  --agent-rate R        agent registrations per second (default 20)
  --deploy-ms MS        the stand-in deploy's duration in the bursts (default 1000)
  --time-scale X        simulated seconds per real second in section 3 (default 100)
  --out DIR             where the JSON goes (default bench-results/)
  --help                show this help
`;

interface Mode {
  readonly name: 'full' | 'quick' | 'smoke';
  readonly artifactRuns: number;
  readonly burstSizes: readonly number[];
  readonly costInstances: number;
  readonly instanceRuns: number;
  /** Default agent delays (seconds, MIN-MAX). */
  readonly agentDelay: string;
}

const MODES: Record<Mode['name'], Mode> = {
  full: {
    name: 'full',
    artifactRuns: 21,
    burstSizes: [100, 500, 1000],
    costInstances: 25,
    instanceRuns: 5,
    agentDelay: '2-20',
  },
  quick: {
    name: 'quick',
    artifactRuns: 15,
    burstSizes: [100],
    costInstances: 10,
    instanceRuns: 3,
    agentDelay: '2-20',
  },
  // Short agent delays: the smoke run shows the path works, not how long agents take.
  smoke: {
    name: 'smoke',
    artifactRuns: 3,
    burstSizes: [10],
    costInstances: 2,
    instanceRuns: 1,
    agentDelay: '1-2',
  },
};
const DEPLOY_SECONDS = [10, 60, 600];

/** A problem with the options; printed without a stack trace. */
class UsageError extends Error {}

interface Options {
  readonly mode: Mode;
  readonly sections: ReadonlySet<number>;
  readonly burst: BurstSettings;
  readonly timeScale: number;
  readonly outDir: string;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean' },
      smoke: { type: 'boolean' },
      sections: { type: 'string' },
      rate: { type: 'string', multiple: true },
      'agent-delay': { type: 'string' },
      'agent-rate': { type: 'string' },
      'deploy-ms': { type: 'string' },
      'time-scale': { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) return undefined;
  const positive = (name: string, raw: string | undefined, fallback: number): number => {
    if (raw === undefined) return fallback;
    const parsed = Number(raw);
    if (!Number.isFinite(parsed) || parsed <= 0)
      throw new UsageError(`--${name} must be a positive number, got ${raw}`);
    return parsed;
  };
  const mode = MODES[values.smoke ? 'smoke' : values.quick ? 'quick' : 'full'];
  const delay = /^(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)$/.exec(values['agent-delay'] ?? mode.agentDelay);
  if (!delay?.[1] || !delay[2] || Number(delay[1]) > Number(delay[2])) {
    throw new UsageError(`--agent-delay must look like 2-20 (MIN-MAX seconds), got ${values['agent-delay']}`);
  }
  const sections = new Set((values.sections ?? '1,2,3,4').split(',').map(Number));
  if ([...sections].some((s) => ![1, 2, 3, 4].includes(s))) {
    throw new UsageError(`--sections takes numbers from 1 to 4, got ${values.sections}`);
  }
  let limits: BurstSettings['limits'];
  try {
    limits = rateLimitsWith(values.rate ?? []);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  return {
    mode,
    outDir: values.out ?? join(__dirname, '..', '..', 'bench-results'),
    sections,
    burst: {
      limits,
      agentDelaySeconds: { min: Number(delay[1]), max: Number(delay[2]) },
      agentRegistrationsPerSecond: positive('agent-rate', values['agent-rate'], 20),
      deployMs: positive('deploy-ms', values['deploy-ms'], 1000),
      // The deployed default is 5 minutes; a real-time run needs its safety net sooner.
      reconcileEverySeconds: 60,
      heartbeatTimeoutSeconds: 600,
    },
    timeScale: positive('time-scale', values['time-scale'], 100),
  };
}

function machine() {
  const cores = cpus();
  return {
    cpu: cores[0]?.model.trim() ?? 'unknown',
    cores: cores.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    kernel: release(),
  };
}

async function main(): Promise<number> {
  let options: Options | undefined;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`npm run bench: ${(error as Error).message}\n`);
    return 2;
  }
  if (!options) {
    process.stdout.write(HELP);
    return 0;
  }
  const { mode, sections } = options;
  const started = new Date();
  const host = machine();
  const say = (text: string) => process.stdout.write(`${text}\n`);
  const progress = (text: string) => process.stderr.write(`bench: ${text}\n`);
  say(`## selfdeploy benchmark (${mode.name} run, ${started.toISOString()})\n`);
  say(
    `Machine: ${host.cores} × ${host.cpu}, ${host.memoryGiB} GiB, Node ${host.node}, Linux ${host.kernel}. Shared machines are noisy: compare the ratios, not the absolute times.\n`,
  );

  const results: {
    artifact?: Awaited<ReturnType<typeof measureArtifact>>;
    burst?: { settings: BurstSettings; runs: BurstFigures[] };
    cost?: { settings: CostSettings; runs: CostFigures[] };
    instance?: Awaited<ReturnType<typeof measureInstanceSide>>;
  } = {};
  const durations: Record<string, number> = {};
  const timed = async <T>(name: string, work: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    try {
      return await work();
    } finally {
      durations[name] = Math.round((Date.now() - t) / 1000);
    }
  };

  if (sections.has(1)) {
    progress(`section 1: building both bundles, ${mode.artifactRuns} interleaved init measurements`);
    results.artifact = await timed('artifact', () => measureArtifact(mode.artifactRuns));
    say(`${artifactSection(results.artifact)}\n`);
  }
  if (sections.has(2)) {
    const runs: BurstFigures[] = [];
    await timed('burst', async () => {
      for (const size of mode.burstSizes) {
        progress(`section 2: burst of ${size} instances`);
        runs.push(await measureBurst(size, options.burst));
      }
    });
    results.burst = { settings: options.burst, runs };
    say(`${burstSection(runs, options.burst)}\n`);
  }
  if (sections.has(3)) {
    const settings: CostSettings = { timeScale: options.timeScale, instances: mode.costInstances };
    const runs: CostFigures[] = [];
    await timed('cost', async () => {
      for (const seconds of DEPLOY_SECONDS) {
        progress(`section 3: ${seconds} s deploys, selfdeploy then the polling orchestrator`);
        runs.push(await measureCost(seconds, settings));
      }
    });
    results.cost = { settings, runs };
    say(`${costSection(runs, settings)}\n`);
  }
  if (sections.has(4)) {
    progress(
      `section 4: ${mode.instanceRuns} run(s) of each deploy step, self-deploy.sh and the plain recipe`,
    );
    results.instance = await timed('instance', () => measureInstanceSide(mode.instanceRuns));
    say(`${instanceSection(results.instance)}\n`);
  }

  mkdirSync(options.outDir, { recursive: true });
  const file = join(options.outDir, `bench-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    `${JSON.stringify({ mode: mode.name, startedAt: started.toISOString(), machine: host, sectionSeconds: durations, ...results }, null, 2)}\n`,
  );
  // Every launch must end by the orchestrator's own completion, nothing failing or dead-lettered
  // on the way: anything else is a bug to see.
  const problems = [
    ...(results.burst?.runs ?? []).flatMap((r) =>
      r.lost + r.failedInvocations + r.deadLetters.bus + r.deadLetters.queue > 0
        ? [
            `burst of ${r.instances}: ${r.lost} lifecycle action(s) lost, ${r.failedInvocations} failed invocation(s), ${r.deadLetters.bus} event(s) the bus gave up on, ${r.deadLetters.queue} message(s) in the dead-letter queue`,
          ]
        : [],
    ),
    ...(results.cost?.runs ?? []).flatMap((r) =>
      r.selfdeploy.notInService + r.polling.notInService > 0
        ? [`${r.deploySeconds} s deploys: an instance did not go into service`]
        : [],
    ),
  ];
  for (const problem of problems) say(`FAILED: ${problem}`);
  const total = Math.round((Date.now() - started.getTime()) / 1000);
  say(
    `Took ${total} s (${Object.entries(durations)
      .map(([name, s]) => `${name} ${s} s`)
      .join(', ')}). Figures as JSON: ${file}`,
  );
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`npm run bench: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
