import { readFileSync } from 'node:fs';
import { SELF_DEPLOY_EXIT_CODES } from '../../functions/shared/exit-codes';
import {
  ALARM_DESCRIPTION_MAX,
  ALARM_RUNBOOK,
  type AlarmName,
  alarmDescription,
  docRunbookSection,
  OPERATIONS_DOC,
  runbookSection,
} from '../../infra/alarm-runbook';
import { SelfDeploy } from '../../infra/self-deploy';
import { resourcesOf, templateOf, testStack } from './helpers';

// An operator woken by an alarm reads its description first and the runbook next: both come
// from infra/alarm-runbook.ts, and these tests fail when either drifts from it.

const stack = testStack();
new SelfDeploy(stack, 'SelfDeploy', {
  groups: [{ autoScalingGroup: 'web' }, { autoScalingGroup: 'worker' }],
});
const descriptions = Object.values(resourcesOf(templateOf(stack), 'AWS::CloudWatch::Alarm')).map(
  (alarm) => alarm.Properties.AlarmDescription,
);
const names = Object.keys(ALARM_RUNBOOK) as AlarmName[];

describe('alarm descriptions', () => {
  it('are the runbook entries, once per group for per-group alarms, and nothing else', () => {
    const expected = names.flatMap((name) =>
      Array.from({ length: ALARM_RUNBOOK[name].perGroup ? 2 : 1 }, () => alarmDescription(name)),
    );
    expect([...descriptions].sort()).toEqual(expected.sort());
  });

  it.each(names)("fit CloudFormation's limit (%s)", (name) => {
    expect(alarmDescription(name).length).toBeLessThanOrEqual(ALARM_DESCRIPTION_MAX);
  });
});

describe('docs/operations.md alarm runbook', () => {
  it('is the section generated from infra/alarm-runbook.ts (npx tsx infra/alarm-runbook.ts --write)', () => {
    expect(docRunbookSection(readFileSync(OPERATIONS_DOC, 'utf8'))).toBe(runbookSection());
  });

  it('says what every exit code of a failed bootstrap means', () => {
    const codes = Object.values(SELF_DEPLOY_EXIT_CODES).filter(
      (code) => code !== SELF_DEPLOY_EXIT_CODES.success,
    );
    const listed = [...runbookSection().matchAll(/^- ([0-9]+): /gm)].map((match) => Number(match[1]));
    expect(listed).toEqual(codes);
  });
});
