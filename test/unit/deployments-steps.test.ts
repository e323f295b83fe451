import {
  chooseCanary,
  failureOf,
  nextClaim,
  phaseVerdict,
  promotedRelease,
  resolvedSha,
  STALE_CLAIM_MS,
} from '../../functions/orchestrator/deployment-steps';
import { RESULT_LINE_PREFIX } from '../../functions/shared/result-line';

const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const C = 'c'.repeat(40);

describe('deployment decisions', () => {
  it('choose a canary with an online agent, running the release when one does, the lowest id among equals', () => {
    const candidates = [
      { instanceId: 'i-3', agent: 'Online', sha: A },
      { instanceId: 'i-2', agent: 'Online', sha: B },
      { instanceId: 'i-1', agent: 'ConnectionLost', sha: B },
      { instanceId: 'i-4', agent: 'Online', sha: B },
    ];
    expect(chooseCanary(candidates, B)).toBe('i-2');
    expect(chooseCanary(candidates, C)).toBe('i-2');
    expect(chooseCanary(candidates, undefined)).toBe('i-2');
    expect(chooseCanary([{ instanceId: 'i-1', agent: undefined, sha: B }], B)).toBeUndefined();
  });

  it('judge a phase only by its own commands: running until every one is final, failed if any did not succeed', () => {
    const deployment = {
      phase: 'rest' as const,
      commands: [
        { commandId: 'canary', phase: 'canary' as const },
        { commandId: 'r1', phase: 'rest' as const },
        { commandId: 'r2', phase: 'rest' as const },
      ],
    };
    const statuses = (r1?: string, r2?: string) =>
      new Map([
        ['canary', 'Success'],
        ['r1', r1],
        ['r2', r2],
      ]);
    expect(phaseVerdict(deployment, statuses('Success', 'InProgress'))).toEqual({ kind: 'running' });
    expect(phaseVerdict(deployment, statuses('Success', undefined))).toEqual({ kind: 'running' });
    expect(phaseVerdict(deployment, statuses('Success', 'Success'))).toEqual({ kind: 'succeeded' });
    expect(phaseVerdict(deployment, statuses('TimedOut', 'Success'))).toEqual({
      kind: 'failed',
      commandIds: ['r1'],
    });
    expect(phaseVerdict({ phase: 'joiners', commands: deployment.commands }, statuses())).toEqual({
      kind: 'unsent',
    });
  });

  it("claim the next transition, wait on a live claim, and take over one that is stale or another deployment's", () => {
    const deployment = { id: 'd-aaaaaaaaaaaa', step: 1 };
    expect(nextClaim(deployment, [1], undefined)).toBe(2);
    expect(nextClaim(deployment, [1, 2], { deploymentId: deployment.id, ageMs: 1000 })).toBeUndefined();
    expect(nextClaim(deployment, [1, 2], { deploymentId: deployment.id, ageMs: STALE_CLAIM_MS + 1 })).toBe(3);
    expect(nextClaim(deployment, [2], { deploymentId: 'd-bbbbbbbbbbbb', ageMs: 0 })).toBe(3);
  });

  it("report a failed run's exit code and reason from its result line, else what SSM says", () => {
    const line = (fields: object) => `…\n${RESULT_LINE_PREFIX}${JSON.stringify(fields)}\n`;
    const run = { status: 'Failed', statusDetails: 'Failed', responseCode: 9 };
    expect(failureOf('i-1', 'c', { ...run, stdout: line({ exitCode: 9, reason: 'cap exited 1' }) })).toEqual({
      instanceId: 'i-1',
      exitCode: 9,
      reason: 'cap exited 1',
      commandId: 'c',
    });
    expect(failureOf('i-1', 'c', { ...run, stdout: 'killed' })).toMatchObject({
      exitCode: 9,
      reason: 'deployCommand (Failed: Failed)',
    });
    expect(
      failureOf('i-1', 'c', {
        status: 'Failed',
        statusDetails: 'Undeliverable',
        responseCode: -1,
        stdout: '',
      }),
    ).toEqual({ instanceId: 'i-1', reason: 'Failed: Undeliverable', commandId: 'c' });
    expect(
      failureOf('i-1', 'c', { ...run, stdout: line({ exitCode: 1, reason: 'x'.repeat(500) }) }).reason,
    ).toHaveLength(200);
  });

  it('take the SHA a canary resolved from its result line, only when it is a full SHA', () => {
    expect(resolvedSha(`${RESULT_LINE_PREFIX}${JSON.stringify({ revision: A })}\n`)).toBe(A);
    expect(resolvedSha(`${RESULT_LINE_PREFIX}${JSON.stringify({ revision: 'main' })}\n`)).toBeUndefined();
    expect(resolvedSha('no result line')).toBeUndefined();
  });

  it('promote with the replaced release as previous; the same SHA again keeps the previous one', () => {
    const current = { sha: A, previous: B, changedAt: 't0', reason: 'r' };
    const deployment = { id: 'd-aaaaaaaaaaaa', baseline: A, reason: 'deploy C' };
    expect(promotedRelease(deployment, C, current, 't1')).toEqual({
      sha: C,
      previous: A,
      changedAt: 't1',
      reason: 'deploy C',
      deploymentId: 'd-aaaaaaaaaaaa',
    });
    expect(promotedRelease(deployment, A, current, 't1')).toMatchObject({ sha: A, previous: B });
    expect(promotedRelease({ id: 'd-aaaaaaaaaaaa', reason: 'first' }, C, undefined, 't1')).not.toHaveProperty(
      'previous',
    );
  });
});
