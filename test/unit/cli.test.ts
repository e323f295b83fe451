import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvokeCommand, type InvokeCommandInput, LambdaClient } from '@aws-sdk/client-lambda';
import { Uint8ArrayBlobAdapter } from '@smithy/core/serde';
import { mockClient } from 'aws-sdk-client-mock';
import type {
  Deployment,
  GroupStatus,
  InstanceStatus,
  OperatorAnswer,
} from '../../functions/shared/operator-actions';
import { CLI_EXIT_CODES } from '../../scripts/cli/exit-codes';
import { run } from '../../scripts/cli/run';

const lambda = mockClient(LambdaClient);

const FUNCTION = 'selfdeploy-orchestrator';
const GROUP = 'web';
const OLD = 'a'.repeat(40);
const NEW = 'b'.repeat(40);
const DEPLOYMENT = 'd-abcdefghijkl';
const AT = '2026-11-27T10:00:00.000Z';

/** The orchestrator's answer to an operator action, as Lambda returns it. */
function answer(result: OperatorAnswer) {
  return {
    StatusCode: 200,
    Payload: Uint8ArrayBlobAdapter.fromString(JSON.stringify({ kind: 'operator', result })),
  };
}

/** An error the orchestrator threw, as Lambda returns it. */
function functionError(errorType: string, errorMessage: string) {
  return {
    StatusCode: 200,
    FunctionError: 'Unhandled',
    Payload: Uint8ArrayBlobAdapter.fromString(JSON.stringify({ errorType, errorMessage, trace: [] })),
  };
}

function payloadOf(input: InvokeCommandInput): unknown {
  if (!(input.Payload instanceof Uint8Array)) throw new Error('the payload is not bytes');
  return JSON.parse(new TextDecoder().decode(input.Payload));
}

/** The payloads the CLI invoked the function with, in order. */
const sent = () => lambda.commandCalls(InvokeCommand).map((call) => payloadOf(call.args[0].input));

async function cli(argv: readonly string[], env: NodeJS.ProcessEnv = { SELFDEPLOY_FUNCTION: FUNCTION }) {
  const out: string[] = [];
  const err: string[] = [];
  const sleeps: number[] = [];
  let now = Date.parse(AT);
  const code = await run(argv, {
    out: (line) => out.push(line),
    err: (line) => err.push(line),
    env,
    sleep: async (ms) => {
      sleeps.push(ms);
      now += ms;
    },
    now: () => now,
  });
  return { code, out: out.join('\n'), err: err.join('\n'), sleeps };
}

function instance(
  instanceId: string,
  sha: string | undefined,
  extra: Partial<InstanceStatus> = {},
): InstanceStatus {
  return {
    instanceId,
    lifecycleState: 'InService',
    agent: 'Online',
    ...(sha === undefined ? {} : { sha, lastDeploy: { result: 'success', exitCode: 0, at: AT, sha } }),
    drift: false,
    ...extra,
  };
}

function deployment(extra: Partial<Deployment> = {}): Deployment {
  return {
    id: DEPLOYMENT,
    group: GROUP,
    kind: 'deploy',
    requested: 'v2',
    baseline: OLD,
    reason: 'new checkout',
    requestedAt: AT,
    updatedAt: AT,
    phase: 'canary',
    step: 1,
    canary: 'i-0000000000000000a',
    commands: [],
    failures: [],
    ...extra,
  };
}

function status(extra: Partial<GroupStatus> = {}): GroupStatus {
  return {
    action: 'status',
    group: GROUP,
    follow: 'release',
    release: { sha: OLD, changedAt: AT, reason: 'first deploy' },
    instances: [instance('i-0000000000000000a', OLD), instance('i-0000000000000000b', OLD)],
    ...extra,
  };
}

const started = {
  action: 'deploy',
  group: GROUP,
  deploymentId: DEPLOYMENT,
  phase: 'canary',
  canary: 'i-0000000000000000a',
  summary: `${DEPLOYMENT}: deploying v2 to ${GROUP}, canary i-0000000000000000a`,
} as const;

beforeEach(() => {
  lambda.reset();
});

describe('the payload each command sends', () => {
  it.each([
    [['status', '--group', GROUP], { action: 'status', group: GROUP }, status()],
    [['release', '--group', GROUP], { action: 'release', group: GROUP }, { action: 'release', group: GROUP }],
    [
      ['deploy', 'v2', '--group', GROUP, '--reason', 'new checkout', '--no-wait'],
      { action: 'deploy', group: GROUP, revision: 'v2', reason: 'new checkout' },
      started,
    ],
    [
      ['rollback', '--group', GROUP, '--no-wait'],
      { action: 'rollback', group: GROUP },
      { ...started, action: 'rollback', summary: `${DEPLOYMENT}: rolling back` },
    ],
    [
      ['pause', '--group', GROUP, '--reason', 'deploys broken'],
      { action: 'pause', group: GROUP, reason: 'deploys broken' },
      { action: 'pause', group: GROUP, paused: true, summary: `${GROUP} paused` },
    ],
    [
      ['resume', '--group', GROUP],
      { action: 'resume', group: GROUP },
      { action: 'resume', group: GROUP, paused: false, summary: `${GROUP} resumed` },
    ],
    [
      ['logs', '--group', GROUP, '--instance', 'i-0000000000000000a', '--deployment', DEPLOYMENT],
      { action: 'logs', group: GROUP, instanceId: 'i-0000000000000000a', deploymentId: DEPLOYMENT },
      { action: 'logs', group: GROUP, runs: [] },
    ],
  ] as const)('%j invokes the function with %j', async (argv, payload, reply) => {
    lambda.on(InvokeCommand).resolves(answer(reply));

    const { code, err } = await cli(argv);

    expect(err).toBe('');
    expect(code).toBe(CLI_EXIT_CODES.success.code);
    expect(sent()).toEqual([payload]);
    expect(lambda).toHaveReceivedCommandWith(InvokeCommand, {
      FunctionName: FUNCTION,
      InvocationType: 'RequestResponse',
    });
  });

  it('takes --function over $SELFDEPLOY_FUNCTION, and --region and --profile into the client', async () => {
    lambda.on(InvokeCommand).resolves(answer({ action: 'release', group: GROUP }));

    await cli(
      ['release', '--group', GROUP, '--function', 'other', '--region', 'eu-west-1', '--profile', 'ops'],
      { SELFDEPLOY_FUNCTION: FUNCTION },
    );

    expect(lambda).toHaveReceivedCommandWith(InvokeCommand, { FunctionName: 'other' });
    const client = lambda.call(0).thisValue;
    expect(client).toBeInstanceOf(LambdaClient);
    expect(await client.config.region()).toBe('eu-west-1');
    expect(client.config.profile).toBe('ops');
  });
});

describe('bad command lines', () => {
  it.each([
    [['status'], '--group is required'],
    [['status', '--group', GROUP, '--verbose'], 'unknown option --verbose'],
    [['stats', '--group', GROUP], 'unknown command "stats"'],
    [['deploy', '--group', GROUP], 'deploy needs <revision>'],
    [['deploy', 'v2', 'v3', '--group', GROUP], 'unexpected argument "v3"'],
    [['status', '--group', GROUP, '--reason', 'x'], '--reason is not an option of status'],
    [['deploy', 'v2', '--group', GROUP, '--interval', '0'], '--interval must be a number of seconds'],
    [['deploy', 'v2;rm', '--group', GROUP], '<revision> "v2;rm": must match'],
    [['logs', '--group', GROUP, '--instance', 'web-1'], '--instance "web-1": must be an instance id'],
    [['status', '--group'], '--group needs a value'],
    [['status', '--group', GROUP, '--json=yes'], '--json takes no value'],
    [['status', '--group', GROUP, '--group', 'api'], '--group is given more than once'],
  ] as const)('%j exits 2 naming the problem, and invokes nothing', async (argv, problem) => {
    const { code, out, err } = await cli(argv);

    expect(code).toBe(CLI_EXIT_CODES.usage.code);
    expect(err).toContain(problem);
    expect(err.split('\n')).toHaveLength(1);
    expect(out).toBe('');
    expect(lambda.calls()).toHaveLength(0);
  });

  it('names every problem in one line', async () => {
    const { code, err } = await cli(['deploy', '--verbose', '--interval', 'soon', '--pace', '3'], {});

    expect(code).toBe(CLI_EXIT_CODES.usage.code);
    expect(err.split('\n')).toHaveLength(1);
    for (const problem of [
      'unknown option --verbose',
      'unknown option --pace',
      '--group is required',
      '--function or $SELFDEPLOY_FUNCTION is required',
      'got soon',
    ]) {
      expect(err).toContain(problem);
    }
    expect(lambda.calls()).toHaveLength(0);
  });

  it('needs a function: --function or $SELFDEPLOY_FUNCTION, the stack output', async () => {
    const { code, err } = await cli(['status', '--group', GROUP], {});

    expect(code).toBe(CLI_EXIT_CODES.usage.code);
    expect(err).toContain("--function or $SELFDEPLOY_FUNCTION is required: the stack's FunctionName output");
    expect(lambda.calls()).toHaveLength(0);
  });
});

describe('--help', () => {
  it.each([
    [[]],
    [['--help']],
    [['-h']],
    [['status', '--help']],
    [['deploy', '--help']],
    [['rollback', '--help']],
    [['release', '--help']],
    [['pause', '--help']],
    [['resume', '--help']],
    [['logs', '--help']],
  ])('%j prints help, exits 0 and invokes nothing', async (argv) => {
    const { code, out } = await cli(argv, {});

    expect(code).toBe(CLI_EXIT_CODES.success.code);
    expect(out).toMatch(/^Usage: npx selfdeploy /);
    expect(out).toContain("the stack's FunctionName output");
    expect(out).toContain('Exit codes:');
    expect(lambda.calls()).toHaveLength(0);
  });

  it("lists a command's own options in its help", async () => {
    const { out } = await cli(['deploy', '--help']);

    expect(out).toContain('Usage: npx selfdeploy deploy <revision> --group NAME [options]');
    for (const option of ['--reason TEXT', '--no-wait', '--interval S', '--json', '--profile NAME']) {
      expect(out).toContain(option);
    }
  });
});

describe('answers the orchestrator refuses', () => {
  it('prints errorType: errorMessage on stderr and exits 1', async () => {
    lambda
      .on(InvokeCommand)
      .resolves(functionError('DeploymentInProgressError', `${GROUP} is already deploying: ${DEPLOYMENT}`));

    const { code, out, err } = await cli(['deploy', 'v2', '--group', GROUP]);

    expect(code).toBe(CLI_EXIT_CODES.failure.code);
    expect(err).toBe(`DeploymentInProgressError: ${GROUP} is already deploying: ${DEPLOYMENT}`);
    expect(out).toBe('');
    expect(sent()).toHaveLength(1);
  });

  it('exits 3 when the function cannot be invoked at all', async () => {
    lambda
      .on(InvokeCommand)
      .rejects(Object.assign(new Error('Function not found: nope'), { name: 'ResourceNotFoundException' }));

    const { code, err } = await cli(['status', '--group', GROUP, '--function', 'nope']);

    expect(code).toBe(CLI_EXIT_CODES.unreachable.code);
    expect(err).toBe('selfdeploy: cannot invoke nope: ResourceNotFoundException: Function not found: nope');
  });

  it('exits 3 when the function is not a selfdeploy orchestrator', async () => {
    lambda
      .on(InvokeCommand)
      .resolves({ StatusCode: 200, Payload: Uint8ArrayBlobAdapter.fromString('"hello"') });

    const { code, err } = await cli(['status', '--group', GROUP]);

    expect(code).toBe(CLI_EXIT_CODES.unreachable.code);
    expect(err).toContain('did not answer as a selfdeploy orchestrator to status');
  });
});

describe('status', () => {
  it('prints the release, pause, the deployment in flight and every instance with drift marked', async () => {
    lambda.on(InvokeCommand).resolves(
      answer(
        status({
          release: { sha: OLD, previous: NEW, changedAt: AT, reason: 'rollback', deploymentId: DEPLOYMENT },
          paused: { since: AT, reason: 'deploys broken' },
          deployment: deployment({ phase: 'rest', sha: NEW }),
          instances: [
            instance('i-0000000000000000a', NEW, { drift: true }),
            instance('i-0000000000000000b', OLD),
            instance('i-0000000000000000c', undefined, {
              lifecycleState: 'Pending:Wait',
              agent: 'not registered',
              drift: true,
            }),
          ],
        }),
      ),
    );

    const { code, out } = await cli(['status', '--group', GROUP]);

    expect(code).toBe(CLI_EXIT_CODES.success.code);
    expect(out).toContain(`release     ${OLD} since ${AT}: rollback (${DEPLOYMENT}); previous bbbbbbb`);
    expect(out).toContain(`paused      since ${AT}: deploys broken`);
    expect(out).toContain(
      `deployment  ${DEPLOYMENT} deploy of v2 (bbbbbbb): rest, canary i-0000000000000000a`,
    );
    const rows = out.split('\n').filter((line) => line.startsWith('i-'));
    expect(rows).toEqual([
      expect.stringMatching(
        /^i-0000000000000000a +InService +Online +bbbbbbb +success \(exit 0\) \S+ +drift$/,
      ),
      expect.stringMatching(/^i-0000000000000000b +InService +Online +aaaaaaa +success \(exit 0\) \S+$/),
      expect.stringMatching(/^i-0000000000000000c +Pending:Wait +not registered +- +- +drift$/),
    ]);
  });

  it("shows a Standby deploy's batch out of service and why it waits", async () => {
    lambda.on(InvokeCommand).resolves(
      answer(
        status({
          deployment: deployment({
            phase: 'rest',
            sha: NEW,
            standby: { instanceIds: ['i-0000000000000000b'], stage: 'returning', waiting: 'group web …' },
          }),
        }),
      ),
    );

    const { out } = await cli(['status', '--group', GROUP]);

    expect(out).toContain('standby     i-0000000000000000b returning; waiting: group web …');
  });

  it('shows the last drift repair, its failures and what it left in Standby, apart from the last deployment', async () => {
    lambda.on(InvokeCommand).resolves(
      answer(
        status({
          lastDeployment: deployment({ phase: 'promoted', sha: NEW }),
          lastRepair: deployment({
            id: 'd-rrrrrrrrrrrr',
            requested: NEW,
            sha: NEW,
            reason: 'drift repair',
            phase: 'failed',
            canary: undefined,
            driftRepair: ['i-0000000000000000b'],
            failures: [{ instanceId: 'i-0000000000000000b', reason: 'cap deploy failed', exitCode: 14 }],
            standby: { instanceIds: ['i-0000000000000000b'], stage: 'returning', waiting: 'group web …' },
          }),
        }),
      ),
    );

    const { out } = await cli(['status', '--group', GROUP]);

    // The labels' column widens to `repair left`.
    const lines = out.split('\n');
    expect(lines).toContain(
      `last         ${DEPLOYMENT} deploy of v2 (bbbbbbb): promoted, canary i-0000000000000000a at ${AT}`,
    );
    expect(lines).toContain(
      `repair       d-rrrrrrrrrrrr drift repair of i-0000000000000000b to bbbbbbb: failed, 1 failed at ${AT}`,
    );
    expect(lines).toContain('repair left  i-0000000000000000b returning; waiting: group web …');
  });

  it('says when the group has no release yet', async () => {
    lambda.on(InvokeCommand).resolves(answer(status({ release: undefined, instances: [] })));

    const { out } = await cli(['status', '--group', GROUP]);

    expect(out).toContain(
      'release     none yet: launches follow the branch until the first successful deploy',
    );
    expect(out).toContain('deployment  none in flight');
  });

  it('--json prints the raw answer', async () => {
    const reply = status({ deployment: deployment() });
    lambda.on(InvokeCommand).resolves(answer(reply));

    const { code, out } = await cli(['status', '--group', GROUP, '--json']);

    expect(code).toBe(CLI_EXIT_CODES.success.code);
    expect(JSON.parse(out)).toEqual(reply);
  });
});

describe('following a deploy', () => {
  const canary = deployment({ phase: 'canary' });
  const rest = deployment({ phase: 'rest', sha: NEW });

  it('prints one line per instance as it changes, then the table, and exits 0 when promoted', async () => {
    lambda
      .on(InvokeCommand)
      .resolvesOnce(answer(started))
      .resolvesOnce(answer(status({ deployment: canary })))
      .resolvesOnce(answer(status({ deployment: canary })))
      .resolvesOnce(
        answer(
          status({
            deployment: rest,
            instances: [instance('i-0000000000000000a', NEW), instance('i-0000000000000000b', OLD)],
          }),
        ),
      )
      .resolvesOnce(
        answer(
          status({
            release: {
              sha: NEW,
              previous: OLD,
              changedAt: AT,
              reason: 'new checkout',
              deploymentId: DEPLOYMENT,
            },
            lastDeployment: deployment({ phase: 'promoted', sha: NEW }),
            instances: [instance('i-0000000000000000a', NEW), instance('i-0000000000000000b', NEW)],
          }),
        ),
      );

    const { code, out, sleeps } = await cli(['deploy', 'v2', '--group', GROUP]);

    expect(code).toBe(CLI_EXIT_CODES.success.code);
    expect(sent()).toEqual([
      { action: 'deploy', group: GROUP, revision: 'v2' },
      ...Array(4).fill({ action: 'status', group: GROUP }),
    ]);
    expect(sleeps).toEqual([2000, 2000, 2000]);
    expect(out.split('\n')).toEqual([
      started.summary,
      `following ${DEPLOYMENT} (Ctrl-C stops following; the deployment goes on)`,
      `[  0.0s] ${DEPLOYMENT} canary (canary i-0000000000000000a)`,
      `[  0.0s] i-0000000000000000a  InService  sha aaaaaaa  last success (exit 0) ${AT}`,
      `[  0.0s] i-0000000000000000b  InService  sha aaaaaaa  last success (exit 0) ${AT}`,
      // the second poll changed nothing: no line
      `[  4.0s] ${DEPLOYMENT} rest (canary i-0000000000000000a)`,
      `[  4.0s] i-0000000000000000a  InService  sha bbbbbbb  last success (exit 0) ${AT}`,
      `${DEPLOYMENT} deploy of v2 (bbbbbbb): promoted, canary i-0000000000000000a — ${NEW}`,
      'INSTANCE             SHA      RESULT    FAILURE',
      'i-0000000000000000a  bbbbbbb  deployed',
      'i-0000000000000000b  bbbbbbb  deployed',
    ]);
  });

  it('ends with the failed instance, its exit code and reason, and exits 1 when the canary fails', async () => {
    const failure = {
      instanceId: 'i-0000000000000000a',
      exitCode: 9,
      reason: 'cap deploy failed: rake aborted',
    };
    lambda
      .on(InvokeCommand)
      .resolvesOnce(answer(started))
      .resolvesOnce(answer(status({ deployment: canary })))
      .resolvesOnce(
        answer(
          status({
            lastDeployment: deployment({ phase: 'failed', sha: NEW, failures: [failure] }),
            instances: [
              instance('i-0000000000000000a', OLD, {
                lastDeploy: { result: 'failure', exitCode: 9, at: AT, sha: NEW },
              }),
              instance('i-0000000000000000b', OLD),
            ],
          }),
        ),
      );

    const { code, out } = await cli(['deploy', 'v2', '--group', GROUP, '--interval', '0.5']);

    expect(code).toBe(CLI_EXIT_CODES.failure.code);
    const table = out.split('\n').slice(-3);
    expect(table).toEqual([
      'INSTANCE             SHA      RESULT        FAILURE',
      'i-0000000000000000a  aaaaaaa  failed        exit 9: cap deploy failed: rake aborted',
      'i-0000000000000000b  aaaaaaa  kept release',
    ]);
    expect(out).toContain(
      `${DEPLOYMENT} deploy of v2 (bbbbbbb): failed, canary i-0000000000000000a, 1 failed`,
    );
  });

  it('counts instead of printing a line per instance in a group of more than 20', async () => {
    const fleet = (onNew: number) =>
      Array.from({ length: 25 }, (_, index) =>
        instance(`i-${String(index).padStart(17, '0')}`, index < onNew ? NEW : OLD),
      );
    lambda
      .on(InvokeCommand)
      .resolvesOnce(answer(started))
      .resolvesOnce(answer(status({ deployment: rest, instances: fleet(1) })))
      .resolvesOnce(answer(status({ deployment: rest, instances: fleet(1) })))
      .resolvesOnce(answer(status({ deployment: rest, instances: fleet(10) })))
      .resolvesOnce(
        answer(status({ lastDeployment: deployment({ phase: 'promoted', sha: NEW }), instances: fleet(25) })),
      );

    const { code, out } = await cli(['deploy', 'v2', '--group', GROUP]);

    expect(code).toBe(CLI_EXIT_CODES.success.code);
    const progress = out
      .split('\n')
      .slice(
        2,
        out
          .split('\n')
          .indexOf(`${DEPLOYMENT} deploy of v2 (bbbbbbb): promoted, canary i-0000000000000000a — ${NEW}`),
      );
    expect(progress).toEqual([
      `[  0.0s] ${DEPLOYMENT} rest: 1/25 at bbbbbbb`,
      `[  4.0s] ${DEPLOYMENT} rest: 10/25 at bbbbbbb`,
    ]);
  });

  it('shows why a Standby batch waits while it does, and what a failed one left in Standby, in the table', async () => {
    const minSize =
      'group web has min-size=2, max-size=4, desired=2: a Standby batch would take the desired capacity below MinSize; lower MinSize or raise the desired capacity to 3 or more';
    const maxSize =
      'group web has min-size=0, max-size=2, desired=2: 1 instance(s) stay in Standby until returning them keeps the desired capacity within MaxSize; raise MaxSize or lower the desired capacity (reconcile returns them then)';
    const failure = { instanceId: 'i-0000000000000000b', exitCode: 9, reason: 'cap deploy failed' };
    const atMinSize = deployment({
      phase: 'rest',
      sha: NEW,
      standby: { instanceIds: [], stage: 'entering', waiting: minSize },
    });
    const goingOn = deployment({
      phase: 'rest',
      sha: NEW,
      standby: { instanceIds: ['i-0000000000000000b'], stage: 'deploying' },
    });
    lambda
      .on(InvokeCommand)
      .resolvesOnce(answer(started))
      .resolvesOnce(answer(status({ deployment: atMinSize })))
      .resolvesOnce(answer(status({ deployment: atMinSize })))
      .resolvesOnce(answer(status({ deployment: goingOn })))
      .resolvesOnce(
        answer(
          status({
            lastDeployment: deployment({
              phase: 'failed',
              sha: NEW,
              failures: [failure],
              standby: { instanceIds: ['i-0000000000000000b'], stage: 'returning', waiting: maxSize },
            }),
          }),
        ),
      );

    const { code, out } = await cli(['deploy', 'v2', '--group', GROUP]);

    expect(code).toBe(CLI_EXIT_CODES.failure.code);
    const lines = out.split('\n');
    expect(lines.filter((line) => line.includes('waits'))).toEqual([
      `[  0.0s] ${DEPLOYMENT} waits: ${minSize}`,
      `[  4.0s] ${DEPLOYMENT} no longer waits on the group's sizes`,
    ]);
    expect(lines[lines.length - 1]).toBe(`standby: i-0000000000000000b returning; waiting: ${maxSize}`);
  });

  it('follows a rollback the same way', async () => {
    lambda
      .on(InvokeCommand)
      .resolvesOnce(
        answer({
          ...started,
          action: 'rollback',
          sha: OLD,
          summary: `${DEPLOYMENT}: rolling back to ${OLD}`,
        }),
      )
      .resolvesOnce(
        answer(
          status({
            lastDeployment: deployment({ kind: 'rollback', requested: OLD, sha: OLD, phase: 'promoted' }),
          }),
        ),
      );

    const { code, out } = await cli(['rollback', '--group', GROUP, '--reason', 'bad release']);

    expect(code).toBe(CLI_EXIT_CODES.success.code);
    expect(sent()[0]).toEqual({ action: 'rollback', group: GROUP, reason: 'bad release' });
    expect(out).toContain(`${DEPLOYMENT} rollback to aaaaaaa: promoted`);
  });

  it('--no-wait returns after the deploy answer', async () => {
    lambda.on(InvokeCommand).resolves(answer(started));

    const { code, out } = await cli(['deploy', 'v2', '--group', GROUP, '--no-wait']);

    expect(code).toBe(CLI_EXIT_CODES.success.code);
    expect(out).toBe(started.summary);
    expect(sent()).toHaveLength(1);
  });

  it('--json prints the deploy answer and the final status, one JSON document a line, and no progress', async () => {
    const final = status({ lastDeployment: deployment({ phase: 'failed', sha: NEW }) });
    lambda
      .on(InvokeCommand)
      .resolvesOnce(answer(started))
      .resolvesOnce(answer(status({ deployment: canary })))
      .resolvesOnce(answer(final));

    const { code, out } = await cli(['deploy', 'v2', '--group', GROUP, '--json']);

    expect(code).toBe(CLI_EXIT_CODES.failure.code);
    expect(out.split('\n').map((line) => JSON.parse(line))).toEqual([started, final]);
  });

  it('says the deployment goes on when following loses the function', async () => {
    lambda
      .on(InvokeCommand)
      .resolvesOnce(answer(started))
      .rejectsOnce(Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }));

    const { code, err } = await cli(['deploy', 'v2', '--group', GROUP]);

    expect(code).toBe(CLI_EXIT_CODES.unreachable.code);
    expect(err.split('\n')).toEqual([
      `selfdeploy: cannot invoke ${FUNCTION}: TimeoutError: socket hang up`,
      `stopped following ${DEPLOYMENT}; it goes on: npx selfdeploy status --group ${GROUP}`,
    ]);
  });

  it('exits 1 when the deployment ended but another one is now the last', async () => {
    lambda
      .on(InvokeCommand)
      .resolvesOnce(answer(started))
      .resolvesOnce(
        answer(status({ lastDeployment: deployment({ id: 'd-zzzzzzzzzzzz', phase: 'promoted' }) })),
      );

    const { code, err } = await cli(['deploy', 'v2', '--group', GROUP]);

    expect(code).toBe(CLI_EXIT_CODES.failure.code);
    expect(err).toContain(`${DEPLOYMENT} is neither in flight nor ${GROUP}'s last deployment`);
  });
});

describe('the other answers', () => {
  it('release prints the SHA and the previous one', async () => {
    lambda.on(InvokeCommand).resolves(
      answer({
        action: 'release',
        group: GROUP,
        release: { sha: NEW, previous: OLD, changedAt: AT, reason: 'r' },
      }),
    );

    const { out } = await cli(['release', '--group', GROUP]);

    expect(out).toBe(`${GROUP} release: ${NEW} since ${AT}: r; previous aaaaaaa`);
  });

  it("logs prints each run's output tail under its instance and command", async () => {
    lambda.on(InvokeCommand).resolves(
      answer({
        action: 'logs',
        group: GROUP,
        runs: [
          {
            instanceId: 'i-0000000000000000a',
            commandId: 'c-1',
            status: 'Failed',
            requestedAt: AT,
            outputTail: 'cap aborted\nSELFDEPLOY_RESULT exit=9\n',
          },
        ],
      }),
    );

    const { out } = await cli(['logs', '--group', GROUP]);

    expect(out.split('\n')).toEqual([
      `== i-0000000000000000a  Failed  command c-1  ${AT}`,
      'cap aborted',
      'SELFDEPLOY_RESULT exit=9',
      '',
    ]);
  });
});

describe('the package bin', () => {
  const root = join(__dirname, '..', '..');
  const bin: unknown = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).bin?.selfdeploy;
  const selfdeploy = (...args: string[]) =>
    spawnSync(process.execPath, [join(root, String(bin)), ...args], {
      cwd: root,
      encoding: 'utf8',
      env: { PATH: process.env.PATH },
    });

  it('runs the CLI: help exits 0, a bad command line exits 2 with one line', () => {
    expect(typeof bin).toBe('string');

    const help = selfdeploy('--help');
    const bad = selfdeploy('stats', '--group', GROUP);

    expect(help.status).toBe(CLI_EXIT_CODES.success.code);
    expect(help.stdout).toMatch(/^Usage: npx selfdeploy <command>/);
    expect(bad.status).toBe(CLI_EXIT_CODES.usage.code);
    expect(bad.stderr).toBe(
      'selfdeploy: unknown command "stats": expected one of status, release, deploy, rollback, pause, resume, logs (selfdeploy --help)\n',
    );
  });
});
