import { readFileSync } from 'node:fs';
import { SELF_DEPLOY_EXIT_CODES } from '../../functions/shared/exit-codes';
import {
  ALARM_DESCRIPTION_MAX,
  ALARM_RUNBOOK,
  type AlarmName,
  alarmDescription,
  docRunbookSection,
  OPERATIONS_DOC,
  runbookAnchor,
  runbookSection,
} from '../../infra/alarm-runbook';
import { SelfDeploy } from '../../infra/self-deploy';
import { parseCommandLine } from '../../scripts/cli/commands';
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

  it.each(names)('end with the path of their runbook entry in the repository (%s)', (name) => {
    expect(alarmDescription(name)).toMatch(
      new RegExp(` Runbook: docs/operations\\.md#${runbookAnchor(name)}$`),
    );
  });

  it.each(names)(
    "keep their link whole under a long runbookBaseUrl, shortening their text to fit CloudFormation's limit (%s)",
    (name) => {
      const base = `https://wiki.example.com/${'ops/'.repeat(150)}operations.md`;
      const description = alarmDescription(name, base);

      expect(description.length).toBeLessThanOrEqual(ALARM_DESCRIPTION_MAX);
      expect(description.endsWith(`… Runbook: ${base}#${runbookAnchor(name)}`)).toBe(true);
      expect(description.startsWith(alarmDescription(name).slice(0, 100))).toBe(true);
    },
  );
});

describe('docs/operations.md alarm runbook', () => {
  it("has a heading for every alarm, at the anchor its description links to (GitHub's)", () => {
    const anchors = readFileSync(OPERATIONS_DOC, 'utf8')
      .split('\n')
      .flatMap((line) => {
        const heading = /^### (.+)$/.exec(line)?.[1];
        return heading
          ? [
              heading
                .toLowerCase()
                .replace(/[^\p{L}\p{N} _-]/gu, '')
                .replace(/ /g, '-'),
            ]
          : [];
      });
    for (const name of names) expect(anchors).toContain(runbookAnchor(name));
  });

  it.each(['FailureStreak', 'BootstrapFailed', 'DeployFailed'] as const)(
    'tells, for %s, the exact CLI commands and a Logs Insights query that find the failing instance',
    (name) => {
      const entry = ALARM_RUNBOOK[name];
      const text = [...entry.check, ...entry.act, ...(entry.details ?? [])].join('\n');

      expect(text).toMatch(/`npx selfdeploy (status|logs) --group <group>/);
      if (name !== 'FailureStreak') {
        expect(text).toContain('npx selfdeploy logs --group <group> --instance <instanceId>');
        expect(text).toMatch(/\| filter group = "<group>"/);
      }
    },
  );

  it('says how to roll back, when to pause, and what to do about a replacement loop', () => {
    const streak = runbookSection().slice(runbookSection().indexOf('### `<group>FailureStreak`'));
    const entry = streak.slice(0, streak.indexOf('\n### ', 1));

    expect(entry).toContain('`npx selfdeploy rollback --group <group>`');
    expect(entry).toContain('`npx selfdeploy pause --group <group> --reason "<why>"`');
    expect(entry).toContain('`npx selfdeploy resume --group <group>`');
    expect(entry).toContain('**Roll back or pause.**');
    expect(entry).toContain('replacement loop');
    // A window, not a strict sequence count, and the entry says so.
    expect(entry).toContain('CloudWatch cannot count a sequence');
  });

  it('is the section generated from infra/alarm-runbook.ts (npx tsx infra/alarm-runbook.ts --write)', () => {
    expect(docRunbookSection(readFileSync(OPERATIONS_DOC, 'utf8'))).toBe(runbookSection());
  });

  it('gives only CLI commands the CLI accepts', () => {
    const commands = [...runbookSection().matchAll(/`npx selfdeploy ([^`]+)`/g)].map(
      (match) => match[1] ?? '',
    );
    expect(commands.length).toBeGreaterThan(0);
    for (const command of commands) {
      // Placeholders filled in as an operator would; shell quoting as the shell removes it.
      const argv = command
        .replace(/<group>/g, 'web')
        .replace(/<revision>/g, 'v2')
        .replace(/<instanceId>/g, 'i-0123456789abcdef0')
        .replace(/"<why>"/g, 'why')
        .split(/\s+/);
      expect(() => parseCommandLine(argv, { SELFDEPLOY_FUNCTION: 'selfdeploy' })).not.toThrow();
    }
  });

  it('says what every exit code of a failed bootstrap means', () => {
    const codes = Object.values(SELF_DEPLOY_EXIT_CODES).filter(
      (code) => code !== SELF_DEPLOY_EXIT_CODES.success,
    );
    const listed = [...runbookSection().matchAll(/^- ([0-9]+): /gm)].map((match) => Number(match[1]));
    expect(listed).toEqual(codes);
  });
});
