import { GetParametersByPathCommand } from '@aws-sdk/client-ssm';
import type { Release } from '../../functions/shared/operator-actions';
import { ssm } from './support';

/** A SHA a group's release names. */
export const RELEASE_SHA = '1111111111111111111111111111111111111111';
/** The SHA before it. */
export const PREVIOUS_SHA = '0000000000000000000000000000000000000000';
/** A SHA a branch head moved to. */
export const BRANCH_SHA = '2222222222222222222222222222222222222222';

export const release = (sha = RELEASE_SHA): Release => ({
  sha,
  previous: PREVIOUS_SHA,
  changedAt: '2026-11-26T09:00:00.000Z',
  reason: 'deploy of the week',
  deploymentId: 'd-abcdefghijkl',
});

export const PAUSED = { since: '2026-11-26T10:00:00.000Z', reason: 'deploys broken, incident 42' };

/** What Parameter Store holds under each group's path (the default releasePath, /selfdeploy). */
export function groupRecords(records: Record<string, Record<string, unknown>>): void {
  ssm.on(GetParametersByPathCommand).callsFake((input: { Path?: string }) => {
    const group = input.Path?.replace(/^\/selfdeploy\//, '') ?? '';
    return {
      Parameters: Object.entries(records[group] ?? {}).map(([name, value]) => ({
        Name: `${input.Path}/${name}`,
        Value: JSON.stringify(value),
        Type: 'String',
      })),
    };
  });
}

/** Parameter Store reads made so far. */
export const parameterReads = () => ssm.commandCalls(GetParametersByPathCommand).length;
