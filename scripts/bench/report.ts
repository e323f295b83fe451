// The benchmark's markdown: one table per section, with the settings a reader needs to
// rerun it and the caveats that keep the figures honest.
import { QUEUE_BATCH_SIZE, QUEUE_BATCHING_WINDOW_SECONDS } from '../../functions/shared/event-queue';
import { TOP_LEVEL_SETTINGS } from '../../functions/shared/group-settings';
import type { RateLimit } from '../local/control-plane/throttle';
import type { ArtifactFigures } from './artifact';
import type { BurstFigures, BurstSettings } from './burst';
import type { CostFigures, CostSettings } from './cost';
import type { InstanceFigures } from './instance-side';
import { REQUESTS_PER_DEPLOY } from './shared-load';
import { round } from './stats';

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

/** A budget the burst figures are held to, at the burst sizes it names (all when none). */
interface Budget {
  readonly label: string;
  readonly value: (r: BurstFigures) => number;
  readonly limit: number;
  readonly sizes?: readonly number[];
}

const BUDGETS: readonly Budget[] = [
  { label: 'handler s / bootstrap ≤ 0.5', value: (r) => r.handlerMsPerBootstrap / 1000, limit: 0.5 },
  {
    label: 'SSM + Auto Scaling calls / bootstrap (mean) ≤ 3.5 at 1000',
    value: (r) => r.callsPerBootstrap.mean,
    limit: 3.5,
    sizes: [1000],
  },
  { label: 'wall / floor ≤ 1.2 at 1000', value: (r) => r.wallOverFloor, limit: 1.2, sizes: [1000] },
  {
    label: 'agent online → SendCommand p95 s ≤ 5 at 100',
    value: (r) => r.onlineToSendSeconds.p95,
    limit: 5,
    sizes: [100],
  },
  { label: 'failed invocations = 0', value: (r) => r.failedInvocations, limit: 0 },
  { label: 'lost actions = 0', value: (r) => r.lost, limit: 0 },
  {
    label: 'dead letters (bus + queue) = 0',
    value: (r) => r.deadLetters.bus + r.deadLetters.queue,
    limit: 0,
  },
];

function budgetCell(budget: Budget, r: BurstFigures): string {
  const value = round(budget.value(r));
  if (budget.sizes && !budget.sizes.includes(r.instances)) return String(value);
  return `${value} ${value <= budget.limit ? 'met' : '**missed**'}`;
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
        'handler s / bootstrap',
        'SSM + Auto Scaling calls / bootstrap (mean, max)',
        'attempts / bootstrap',
        'SQS calls / bootstrap',
        'throttled calls (all retried)',
        'failed invocations',
        'lost actions',
        'dead letters (bus, queue)',
      ],
      rows.map((r) => [
        r.instances,
        r.wallSeconds,
        r.floorSeconds,
        r.wallOverFloor,
        (r.handlerMsPerBootstrap / 1000).toFixed(2),
        `${r.callsPerBootstrap.mean}, ${r.callsPerBootstrap.max}`,
        r.attemptsPerBootstrap,
        r.sqsCallsPerBootstrap,
        r.throttled,
        r.failedInvocations,
        r.lost,
        `${r.deadLetters.bus}, ${r.deadLetters.queue}`,
      ]),
    ),
    '',
    markdownTable(
      [
        'instances',
        'peak executions (function; launch, status mappings)',
        'throttled invocations',
        'failed batch items',
        'agent online → SendCommand s (p50, p95, max)',
        'Parameter Store requests/s (peak, mean; derived)',
        'git host requests/s (peak, mean; derived)',
      ],
      rows.map((r) => [
        r.instances,
        `${r.peakConcurrency.function}, ${r.peakConcurrency.launches}, ${r.peakConcurrency.statuses}`,
        r.throttledInvocations,
        r.failedBatchItems,
        `${r.onlineToSendSeconds.p50}, ${r.onlineToSendSeconds.p95}, ${r.onlineToSendSeconds.max}`,
        `${r.sharedLoad.parameterStore.peakPerSecond}, ${r.sharedLoad.parameterStore.meanPerSecond}`,
        `${r.sharedLoad.gitHost.peakPerSecond}, ${r.sharedLoad.gitHost.meanPerSecond}`,
      ]),
    ),
    '',
    markdownTable(
      ['budget', ...rows.map((r) => `${r.instances} instances`)],
      BUDGETS.map((budget) => [budget.label, ...rows.map((r) => budgetCell(budget, r))]),
    ),
    '',
    `- Rate limits (assumed: AWS does not publish these quotas; \`--rate Op=rate/burst\` changes one): ${limitsLine(settings.limits)}.`,
    `- Agents are ready ${settings.agentDelaySeconds.min}–${settings.agentDelaySeconds.max} s after launch (uniform, seeded) and register at most ${settings.agentRegistrationsPerSecond}/s (\`--agent-delay\`, \`--agent-rate\`); the stand-in deploy takes ${settings.deployMs} ms (\`--deploy-ms\`); reconcile every ${settings.reconcileEverySeconds} s; the control plane runs in real time.`,
    `- The orchestrator as deployed by default: its queue consumed by the event source mapping in batches of up to ${QUEUE_BATCH_SIZE} gathered for ${QUEUE_BATCHING_WINDOW_SECONDS} s, MaximumConcurrency ${TOP_LEVEL_SETTINGS.maxConcurrency.default}, no reserved concurrency (the account's 1000); waits for agents not yet online go back to the queue with growing, jittered delays.`,
    '- Floor: the last CompleteLifecycleAction cannot come before its token bucket allows one per instance, nor before the last SendCommand (one per instance, after the last agent registered, bucket-limited) plus one deploy. The queue adds no bound of its own: a re-queued wait can come up at any moment after its agent registers, so no later floor holds for every run; what its delays cost shows in agent online → SendCommand.',
    '- Calls / bootstrap: answered SSM and Auto Scaling calls over the instances (mean); the most answered calls naming one instance (max; calls that name instances only in a filter are not attributed). Attempts include throttled and InvalidInstanceId answers. SQS calls: the function’s own (SendMessageBatch re-queueing waits); the mapping’s ReceiveMessage and DeleteMessage are Lambda’s pollers’, made in-process here and not counted.',
    '- Throttled calls: answered with a throttling error; the SDK retried each. Failed invocations: the function threw or timed out (its batch comes back after the visibility timeout). Throttled invocations: refused at a concurrency limit, nothing run; the mapping backs off and retries. Failed batch items: messages the function reported failed (batchItemFailures). Lost actions: lifecycle actions not ended by CompleteLifecycleAction (hook timeout, or still open at the end). Dead letters: scheduled events the bus gave up delivering, and messages in the queue’s dead-letter queue.',
    ...rows.flatMap((r) =>
      r.failedInvocations > 0
        ? [
            `- ${r.instances} instances: ${r.failedInvocations} invocations failed (${Object.entries(
              r.failedInvocationsByError,
            )
              .map(([name, count]) => `${name} ${count}`)
              .join(', ')}).`,
          ]
        : [],
    ),
    '- Handler time: the sum of invocation durations over the instances (every batch and scheduled reconcile). Peak executions: the most invocations of the function running at once (scheduled reconciles too), and of the mapping’s at once (bounded by MaximumConcurrency). Agent online → SendCommand: from an instance’s registration with SSM to the first SendCommand naming it, over the instances.',
    `- Parameter Store and git host load, derived (the stand-in deploy makes no such requests): each deploy that started counts the requests one real run of self-deploy.sh makes on a new instance, at the moment it started. Parameter Store: ${REQUESTS_PER_DEPLOY.parameterStore.count} per deploy, assuming ${REQUESTS_PER_DEPLOY.parameterStore.assumes}. Git host: ${REQUESTS_PER_DEPLOY.gitHost.count} per deploy, assuming ${REQUESTS_PER_DEPLOY.gitHost.assumes}. Every attempt succeeds (a failed one is retried, up to 4 attempts per step, adding a request each). Every deploy that started counts as a new instance’s first: a second run on the same instance asks less (nothing when it finds the first still running and exits 13; no Capistrano requests when the first already succeeded). Peak: the most requests in any one second — an upper estimate, as a real deploy spreads them over its first seconds; mean: over the seconds from the first deploy’s start to the last’s.`,
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
        'selfdeploy SSM + Auto Scaling calls / bootstrap',
        'polling SSM + Auto Scaling calls / bootstrap',
        'selfdeploy SQS calls / bootstrap',
      ],
      rows.map((r) => [
        `${r.deploySeconds} s`,
        r.selfdeploy.lambdaMsPerBootstrap,
        r.polling.lambdaMsPerBootstrap,
        r.lambdaRatio,
        r.selfdeploy.callsPerBootstrap,
        r.polling.callsPerBootstrap,
        r.selfdeploy.sqsCallsPerBootstrap,
      ]),
    ),
    '',
    `- ${settings.instances} instances launched at once per run, agents online at launch, no throttling; each orchestrator on its own control plane with the same settings, running ${settings.timeScale}× faster than real time (\`--time-scale\`). selfdeploy runs as deployed, behind its queue and event source mapping (whose batching window runs as fast); the polling orchestrator is invoked per launch event.`,
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
