import type { Deployment } from '../../functions/shared/operator-actions';
import { counterLine, resultTable } from '../../scripts/cli/render';

const NEW_SHA = '2'.repeat(40);

const ended: Deployment = {
  id: 'd-aaaaaaaaaaaa',
  group: 'web',
  kind: 'deploy',
  requested: 'v2',
  sha: NEW_SHA,
  reason: 'deploy v2',
  requestedAt: '2026-11-27T10:00:00.000Z',
  updatedAt: '2026-11-27T10:30:00.000Z',
  phase: 'failed',
  step: 9,
  commands: [],
  failures: [{ instanceId: 'i-00000000000000001', exitCode: 14, reason: 'cap deploy failed' }],
  failureCount: 12,
};

describe('a deployment whose record names only its first failures', () => {
  it('counts every failure and says how many more the log names', () => {
    const instances = [
      {
        instanceId: 'i-00000000000000001',
        lifecycleState: 'InService',
        agent: 'Online' as const,
        drift: true,
      },
    ];

    expect(counterLine(ended, instances)).toBe('d-aaaaaaaaaaaa failed: 0/1 at 2222222, 12 failed');
    const table = resultTable(ended, instances);
    expect(table[0]).toContain(', 12 failed');
    expect(table).toContain('and 11 more failed (the log names every one)');
  });
});
