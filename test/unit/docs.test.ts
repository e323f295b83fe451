import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { parseConfig } from '../../functions/orchestrator/config';
import { ConfigError } from '../../functions/shared/errors';
import { SELF_DEPLOY_EXIT_CODES } from '../../functions/shared/exit-codes';
import { MetricName } from '../../functions/shared/metric-names';
import { ALARM_NAMES, ALARM_RUNBOOK } from '../../infra/alarm-runbook';
import { section, tableRows } from './markdown';
import { WAIT_QUEUE_URL } from './support';

// The docs are read by operators who act on them: each test here fails when a doc and the
// code it describes drift apart.

const ROOT = resolve(__dirname, '..', '..');
const DOCS = join(ROOT, 'docs');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

describe('docs/instance.md exit codes', () => {
  const helpCodes = () => {
    const help = execFileSync('bash', [join(ROOT, 'scripts/instance/self-deploy.sh'), '--help'], {
      encoding: 'utf8',
    });
    const lines = help.slice(help.indexOf('\nExit codes:\n')).split('\n');
    return lines.flatMap((line) => {
      const match = /^ {2}([0-9]+) +(.+)$/.exec(line);
      return match ? [[match[1] as string, match[2] as string] as const] : [];
    });
  };
  const docCodes = () => tableRows(section(read('docs/instance.md'), 'Exit codes'));

  it("has one row per line of the script's --help, in its words", () => {
    const help = helpCodes();
    expect(help.length).toBeGreaterThan(0);
    expect(docCodes()).toEqual(help);
  });

  it('lists exactly the codes of SELF_DEPLOY_EXIT_CODES', () => {
    const defined = Object.values(SELF_DEPLOY_EXIT_CODES)
      .map(String)
      .sort((a, b) => Number(a) - Number(b));
    expect(docCodes().map(([code]) => code)).toEqual(defined);
    expect(helpCodes().map(([code]) => code)).toEqual(defined);
  });
});

describe('docs/configuration.md', () => {
  const minimal = {
    documentName: 'SelfDeploy',
    waitQueueUrl: WAIT_QUEUE_URL,
    groups: { web: { lifecycleHookName: 'launch' } },
  };
  const parsed = parseConfig(JSON.stringify(minimal));
  const web: Record<string, unknown> = parsed.groups.web ?? {};
  const rows = tableRows(read('docs/configuration.md').split('\n')).map(([field, fallback]) => {
    const name = /^`([A-Za-z.*]+)`$/.exec(field)?.[1];
    if (!name) throw new Error(`configuration.md: field cell ${field} is not one backticked name`);
    return { name, fallback };
  });
  /** Where a documented field lives in a parsed configuration. */
  const parsedValue = (name: string): unknown => {
    const group = /^groups\.\*\.(.+)$/.exec(name)?.[1];
    return group === undefined ? (parsed as Record<string, unknown>)[name] : web[group];
  };

  it('documents every field of SELFDEPLOY_CONFIG, and no other', () => {
    const fields = [...Object.keys(parsed), ...Object.keys(web).map((field) => `groups.*.${field}`)].sort();
    expect(rows.map(({ name }) => name).sort()).toEqual(fields);
  });

  it("gives each field configSchema's own default", () => {
    const documented = rows.filter(({ fallback }) => !fallback.startsWith('(required'));
    expect(documented.length).toBeGreaterThan(0);
    for (const { name, fallback } of documented) {
      const literal = /^`(.*)`$/.exec(fallback)?.[1];
      const expected = literal === "''" ? '' : literal;
      expect({ name, default: expected }).toEqual({ name, default: String(parsedValue(name)) });
    }
  });

  it('says "(required)" only of fields the configuration must give', () => {
    const required = rows.filter(({ fallback }) => fallback.startsWith('(required'));
    expect(required.map(({ name }) => name).sort()).toEqual([
      'documentName',
      'groups',
      'groups.*.lifecycleHookName',
      'waitQueueUrl',
    ]);
    for (const { name } of required.filter(({ name }) => name !== 'groups')) {
      const config = structuredClone(minimal) as Record<string, unknown>;
      const group = name.startsWith('groups.')
        ? (config.groups as { web: Record<string, unknown> }).web
        : config;
      delete group[name.replace('groups.*.', '')];
      expect(() => parseConfig(JSON.stringify(config))).toThrow(ConfigError);
    }
  });
});

describe('docs/operations.md metrics', () => {
  const operations = read('docs/operations.md');

  it('has one row per metric of MetricName, and no other', () => {
    const documented = tableRows(section(operations, 'Metrics and logs')).map(([metric]) => {
      const name = /^`([A-Za-z]+)`$/.exec(metric)?.[1];
      if (!name) throw new Error(`operations.md: metric cell ${metric} is not one backticked name`);
      return name;
    });
    expect(documented.sort()).toEqual(Object.values(MetricName).sort());
  });

  it('names only per-group alarms that exist', () => {
    const alarms = [...operations.matchAll(/`<group>([A-Za-z]+)`/g)].map((match) => match[1]);
    const perGroup = ALARM_NAMES.filter((name) => ALARM_RUNBOOK[name].perGroup);
    expect(alarms.length).toBeGreaterThan(0);
    for (const alarm of alarms) expect(perGroup).toContain(alarm);
  });
});

describe('links in README.md and docs/', () => {
  const files = [
    'README.md',
    ...readdirSync(DOCS)
      .filter((name) => name.endsWith('.md'))
      .map((name) => `docs/${name}`),
  ];
  /** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
  const anchor = (heading: string) =>
    heading
      .toLowerCase()
      .replace(/[^\p{L}\p{N} _-]/gu, '')
      .replace(/ /g, '-');
  const anchorsOf = (path: string) =>
    new Set(
      readFileSync(path, 'utf8')
        .split('\n')
        .flatMap((line) => {
          const heading = /^#{1,6} (.+)$/.exec(line)?.[1];
          return heading ? [anchor(heading)] : [];
        }),
    );

  it.each(files)('every relative link in %s points at an existing file and heading', (file) => {
    const text = read(file);
    const broken: string[] = [];
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (target === undefined || /^[a-z][a-z+.-]*:/i.test(target)) continue;
      const [path = '', fragment] = target.split('#');
      const resolved = path === '' ? join(ROOT, file) : resolve(dirname(join(ROOT, file)), path);
      if (!existsSync(resolved)) {
        broken.push(`${target} (no ${relative(ROOT, resolved)})`);
      } else if (fragment && (statSync(resolved).isDirectory() || !anchorsOf(resolved).has(fragment))) {
        broken.push(`${target} (no heading #${fragment})`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('keeps the README under 15 KB: the reference lives in docs/', () => {
    expect(Buffer.byteLength(read('README.md'))).toBeLessThanOrEqual(15 * 1024);
  });
});
