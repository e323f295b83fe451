import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RetentionDays } from 'aws-cdk-lib/aws-logs';
import * as ts from 'typescript';
import { parseConfig } from '../../functions/orchestrator/config';
import {
  defaultHeartbeatSeconds,
  GROUP_SETTINGS,
  type SettingSpec,
  TOP_LEVEL_SETTINGS,
} from '../../functions/shared/group-settings';
import { existingGroupsConfigSchema } from '../../infra/app-config';
import { WAIT_QUEUE_URL } from './support';

// Every place that states a setting's default is checked here against the one table of
// settings, functions/shared/group-settings.ts: the construct's TSDoc, the props tables of
// docs/deploying.md, the existing-groups JSON schema and the function's derived heartbeat.

const ROOT = resolve(__dirname, '..', '..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

/** A prop of an interface of infra/props.ts as its TSDoc states it. */
interface DocumentedProp {
  readonly name: string;
  readonly optional: boolean;
  readonly summary: string;
  readonly default: string | undefined;
}

function documentedProps(interfaceName: string): DocumentedProp[] {
  const source = ts.createSourceFile('props.ts', read('infra/props.ts'), ts.ScriptTarget.Latest, true);
  const declaration = source.statements.find(
    (node): node is ts.InterfaceDeclaration =>
      ts.isInterfaceDeclaration(node) && node.name.text === interfaceName,
  );
  if (!declaration) throw new Error(`infra/props.ts has no interface ${interfaceName}`);
  return declaration.members.filter(ts.isPropertySignature).map((member) => {
    const docs = ts.getJSDocCommentsAndTags(member).filter(ts.isJSDoc);
    const defaultTag = ts.getJSDocTags(member).find((tag) => tag.tagName.text === 'default');
    const text = (comment: ts.JSDoc['comment']) =>
      (ts.getTextOfJSDocComment(comment) ?? '').replace(/\s+/g, ' ').trim();
    return {
      name: member.name.getText(source),
      optional: member.questionToken !== undefined,
      summary: docs.map((doc) => text(doc.comment)).join(' '),
      default: defaultTag === undefined ? undefined : text(defaultTag.comment),
    };
  });
}

/** A default as code writes it: the value in the construct's own terms. */
function valueInCode(spec: SettingSpec): string | undefined {
  const value = spec.default;
  if (value === undefined) return undefined;
  switch (spec.kind) {
    case 'duration': {
      const seconds = Number(value);
      return seconds % 60 === 0 ? `Duration.minutes(${seconds / 60})` : `Duration.seconds(${seconds})`;
    }
    case 'retention': {
      const name = Object.entries(RetentionDays).find(([, days]) => days === value)?.[0];
      return `logs.RetentionDays.${name}`;
    }
    case 'removalPolicy':
      return `RemovalPolicy.${value}`;
    case 'count':
      return String(value);
    default:
      return `'${value}'`;
  }
}

/** What the TSDoc `@default` of a setting must say. */
const tsdocDefault = (spec: SettingSpec) => spec.stated ?? valueInCode(spec);
/** What the docs' props tables must say: the same, a value in backticks. */
const docsDefault = (spec: SettingSpec) => spec.stated ?? `\`${valueInCode(spec)}\``;

const interfaces = [
  ['SelfDeployProps', TOP_LEVEL_SETTINGS, 'groups'],
  ['SelfDeployGroup', GROUP_SETTINGS, 'autoScalingGroup'],
] as const;

describe.each(interfaces)('the TSDoc of %s', (interfaceName, settings, required) => {
  const props = documentedProps(interfaceName);
  const table: Record<string, SettingSpec> = settings;

  it('has one optional prop per setting of the table, and the one required prop besides', () => {
    expect(props.filter((prop) => prop.optional).map((prop) => prop.name)).toEqual(Object.keys(settings));
    expect(props.filter((prop) => !prop.optional).map((prop) => prop.name)).toEqual([required]);
  });

  it("states each prop's default as the table has it", () => {
    for (const prop of props.filter(({ optional }) => optional)) {
      const spec = table[prop.name];
      expect({ prop: prop.name, default: prop.default }).toEqual({
        prop: prop.name,
        default: spec && tsdocDefault(spec),
      });
    }
  });

  it("opens each prop's description with the table's one line", () => {
    for (const prop of props.filter(({ optional }) => optional)) {
      const line = table[prop.name]?.doc.replace(/\.$/, '');
      expect({ prop: prop.name, summary: prop.summary.slice(0, line?.length) }).toEqual({
        prop: prop.name,
        summary: line,
      });
    }
  });
});

describe('the props tables of docs/deploying.md', () => {
  const lines = read('docs/deploying.md').split('\n');
  const start = lines.indexOf('## Construct props (`SelfDeployProps`)');
  const perGroup = lines.findIndex((line, index) => index > start && line.startsWith('Per group'));
  const end = lines.findIndex((line, index) => index > perGroup && line === '');
  const rows = (from: number, to: number) =>
    lines.slice(from, to).flatMap((line) => {
      const match = /^\| `([A-Za-z]+)` \| (.+?) \| /.exec(line);
      return match ? [{ name: match[1] as string, default: match[2] as string }] : [];
    });
  const tables = {
    SelfDeployProps: rows(start, perGroup),
    SelfDeployGroup: rows(perGroup, end),
  };

  it.each(interfaces)(
    'list every prop of %s in its order, with its TSDoc default',
    (interfaceName, settings) => {
      const table: Record<string, SettingSpec> = settings;
      expect(start).toBeGreaterThan(0);
      const expected = documentedProps(interfaceName).map((prop) => {
        const spec = table[prop.name];
        return { name: prop.name, default: spec ? docsDefault(spec) : '(required)' };
      });
      expect(tables[interfaceName]).toEqual(expected);
    },
  );
});

describe('the JSON configuration of the existing-groups stack', () => {
  const jsonNames = (settings: Record<string, SettingSpec>) =>
    Object.values(settings).flatMap((spec) => (spec.json === undefined ? [] : [spec.json]));
  const shape = existingGroupsConfigSchema.def.shape;

  it('takes every top-level setting the table gives a JSON name, the groups, and nothing else', () => {
    expect(Object.keys(shape).sort()).toEqual(
      // instanceRoleNames is only there to be refused with a message saying what replaced it.
      [...jsonNames(TOP_LEVEL_SETTINGS), 'groups', 'instanceRoleNames'].sort(),
    );
  });

  it("takes every group setting under the table's JSON name, the group's name and its role", () => {
    const group = shape.groups.def.element.def.shape;
    expect(Object.keys(group).sort()).toEqual(
      [...jsonNames(GROUP_SETTINGS), 'name', 'instanceRoleName'].sort(),
    );
  });
});

describe('SELFDEPLOY_CONFIG', () => {
  const minimalGroup = { lifecycleHookName: 'launch' };
  const withGroup = (group: Record<string, unknown>) =>
    JSON.stringify({ documentName: 'SelfDeploy', waitQueueUrl: WAIT_QUEUE_URL, groups: { web: group } });

  it('requires exactly the group settings the table says it must give', () => {
    const table: Record<string, SettingSpec> = GROUP_SETTINGS;
    const required = Object.keys(table).filter((name) => table[name]?.requiredInFunctionConfig);
    expect(required).toEqual(Object.keys(minimalGroup));
    for (const name of required) {
      const { [name]: _left, ...rest }: Record<string, unknown> = minimalGroup;
      expect(() => parseConfig(withGroup(rest))).toThrow(`groups.web.${name}`);
    }
    expect(() => parseConfig(withGroup(minimalGroup))).not.toThrow();
  });
});

describe('docs/configuration.md', () => {
  const rows = read('docs/configuration.md').split('\n');

  it.each([
    ['executionTimeoutSeconds', TOP_LEVEL_SETTINGS.executionTimeout.range],
    ['agentWaitSeconds', TOP_LEVEL_SETTINGS.agentWait.range],
    ['groups.*.heartbeatTimeoutSeconds', GROUP_SETTINGS.heartbeatTimeout.range],
  ])('gives the range of %s the table allows', (field, [min, max]) => {
    const row = rows.find((line) => line.startsWith(`| \`${field}\` |`));

    expect(row).toContain(`(${min}–${max})`);
  });

  it('states the heartbeat timeout a configuration without one assumes, from the same function as the hook', () => {
    const row = read('docs/configuration.md')
      .split('\n')
      .find((line) => line.startsWith('| `groups.*.heartbeatTimeoutSeconds` |'));
    const assumed = defaultHeartbeatSeconds(
      TOP_LEVEL_SETTINGS.agentWait.default,
      TOP_LEVEL_SETTINGS.executionTimeout.default,
    );
    const parsed = parseConfig(
      JSON.stringify({
        documentName: 'SelfDeploy',
        waitQueueUrl: WAIT_QUEUE_URL,
        groups: { web: { lifecycleHookName: 'launch' } },
      }),
    );

    expect(row).toContain(`| \`${assumed}\` |`);
    expect(parsed.groups.web?.heartbeatTimeoutSeconds).toBe(assumed);
  });
});
