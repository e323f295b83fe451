// The benchmark's markdown: one table per section, with the settings a reader needs to
// rerun it and the caveats that keep the figures honest.
import type { RateLimit } from '../local/control-plane/throttle';
import type { ArtifactFigures } from './artifact';
import type { BurstFigures, BurstSettings } from './burst';
import type { CostFigures, CostSettings } from './cost';
import type { InstanceFigures } from './instance-side';

export function markdownTable(
  header: readonly string[],
  rows: readonly (readonly (string | number)[])[],
): string {
  const line = (cells: readonly (string | number)[]) => `| ${cells.map(String).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

const kb = (bytes: number) => `${(bytes / 1024).toFixed(0)} KB`;

export function artifactSection(figures: ArtifactFigures): string {
  return [
    '### 1. Lambda artifact',
    '',
    markdownTable(
      [
        '',
        'selfdeploy (the infra’s esbuild settings)',
        'naive bundle (CommonJS, default resolution)',
        'ratio',
      ],
      [
        ['bundle size', kb(figures.selfdeploy.bytes), kb(figures.naive.bytes), figures.sizeRatio],
        [
          `module init, median of ${figures.runs} interleaved fresh processes`,
          `${figures.selfdeploy.initMsMedian} ms`,
          `${figures.naive.initMsMedian} ms`,
          figures.initRatio,
        ],
      ],
    ),
  ].join('\n');
}

function limitsLine(limits: Readonly<Record<string, RateLimit>>): string {
  return Object.entries(limits)
    .map(([operation, limit]) => `${operation} ${limit.ratePerSecond}/s (burst ${limit.burst})`)
    .join(', ');
}

export function burstSection(rows: readonly BurstFigures[], settings: BurstSettings): string {
  return [
    '### 2. Burst scale-outs (local control plane, real handler, stand-in deploy)',
    '',
    markdownTable(
      [
        'instances',
        'wall s',
        'floor s',
        'wall / floor',
        'throttled (all retried)',
        'lost actions',
        'calls / bootstrap (mean, max)',
        'attempts / bootstrap',
        'handler s / bootstrap',
      ],
      rows.map((r) => [
        r.instances,
        r.wallSeconds,
        r.floorSeconds,
        r.wallOverFloor,
        r.failedInvocations + r.deadLetters === 0
          ? r.throttled
          : `${r.throttled} (${r.failedInvocations} invocations failed)`,
        r.lost,
        `${r.callsPerBootstrap.mean}, ${r.callsPerBootstrap.max}`,
        r.attemptsPerBootstrap,
        (r.handlerMsPerBootstrap / 1000).toFixed(2),
      ]),
    ),
    '',
    `- Rate limits (assumed: AWS does not publish these quotas; \`--rate Op=rate/burst\` changes one): ${limitsLine(settings.limits)}.`,
    `- Agents are ready ${settings.agentDelaySeconds.min}–${settings.agentDelaySeconds.max} s after launch (uniform, seeded) and register at most ${settings.agentRegistrationsPerSecond}/s (\`--agent-delay\`, \`--agent-rate\`); the stand-in deploy takes ${settings.deployMs} ms (\`--deploy-ms\`); reconcile every ${settings.reconcileEverySeconds} s; the control plane runs in real time.`,
    '- Floor: the last CompleteLifecycleAction cannot come before its token bucket allows one per instance, nor before the last SendCommand (one per instance, after the last agent registered, bucket-limited) plus one deploy.',
    '- Lost actions: launched instances whose lifecycle action did not end by CompleteLifecycleAction (hook timeout, or still open at the end). Throttled: calls the control plane answered with a throttling error; the SDK retried each (no invocation failed, nothing reached the dead-letter list, unless noted).',
    ...rows.flatMap((r) =>
      r.failedInvocations > 0
        ? [
            `- ${r.instances} instances: ${r.failedInvocations} invocations failed (${Object.entries(
              r.failedInvocationsByError,
            )
              .map(([name, count]) => `${name} ${count}`)
              .join(
                ', ',
              )}) and were retried by the event bus; ${r.deadLetters} reached the dead-letter list.`,
          ]
        : [],
    ),
    '- Calls / bootstrap: answered API calls over the instances (mean); the most answered calls naming one instance (max; calls that name instances only in a filter are not attributed). Attempts include throttled and InvalidInstanceId answers. Handler time: the sum of invocation durations over the instances — including time spent waiting for agents to register.',
  ].join('\n');
}

export function costSection(rows: readonly CostFigures[], settings: CostSettings): string {
  return [
    '### 3. Cost per bootstrap as deploys get longer',
    '',
    markdownTable(
      [
        'simulated deploy',
        'selfdeploy Lambda ms / bootstrap',
        'polling (waitUntilCommandExecuted) Lambda ms / bootstrap',
        'ratio',
        'selfdeploy calls / bootstrap',
        'polling calls / bootstrap',
      ],
      rows.map((r) => [
        `${r.deploySeconds} s`,
        r.selfdeploy.lambdaMsPerBootstrap,
        r.polling.lambdaMsPerBootstrap,
        r.lambdaRatio,
        r.selfdeploy.callsPerBootstrap,
        r.polling.callsPerBootstrap,
      ]),
    ),
    '',
    `- ${settings.instances} instances launched at once per run, agents online at launch, no throttling; each orchestrator on its own control plane with the same settings, running ${settings.timeScale}× faster than real time (\`--time-scale\`).`,
    `- The polling orchestrator's waiter delays (5 s min, 120 s max on AWS) are divided by the time scale, so it polls as often per deploy as on AWS; the real time it sleeps is multiplied back (× ${settings.timeScale}) into the Lambda time shown, time in API calls counts as measured. selfdeploy never sleeps here: its time is as measured. Lambda's 900 s limit means the polling orchestrator cannot wait for a deploy longer than ~15 min at all.`,
    `- Lifecycle actions left open or abandoned: ${rows.reduce((n, r) => n + r.selfdeploy.notInService, 0)} (selfdeploy), ${rows.reduce((n, r) => n + r.polling.notInService, 0)} (polling).`,
  ].join('\n');
}

export function instanceSection(figures: InstanceFigures): string {
  const rows: [string, keyof InstanceFigures['ratio']][] = [
    ['first deploy (fresh instance)', 'first'],
    ['redeploy after a new commit', 'redeploy'],
    ['nothing new (selfdeploy: fast path)', 'unchanged'],
  ];
  return [
    '### 4. Instance side (real sshd, git, Capistrano)',
    '',
    markdownTable(
      ['step', 'self-deploy.sh s', 'plain recipe s', 'plain / selfdeploy'],
      rows.map(([label, step]) => [
        label,
        figures.selfdeploy[step],
        figures.plain[step],
        figures.ratio[step],
      ]),
    ),
    '',
    `- Medians of ${figures.runs} runs each, the two interleaved (alternating which goes first). Plain recipe: \`git fetch\`, \`git reset --hard origin/master\`, \`bundle install\`, \`bundle exec cap local_production deploy\` every time; it would usually switch host key checking off — here it uses the same stage and SSH settings as selfdeploy, so only the work differs. selfdeploy's first deploy includes generating and trusting its localhost key.`,
  ].join('\n');
}
