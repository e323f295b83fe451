import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { OPERATOR_ACTIONS } from '../../functions/shared/operator-actions';
import { COMMANDS, topHelp } from '../../scripts/cli/commands';
import { CLI_EXIT_CODES } from '../../scripts/cli/exit-codes';
import { section, tableRows } from './markdown';

// docs/cli.md is what operators script against: each test here fails when it and the CLI drift apart.

const doc = readFileSync(join(resolve(__dirname, '..', '..'), 'docs', 'cli.md'), 'utf8');

/** The lines of a --help block that starts with `title` and ends at a blank line. */
function helpBlock(title: string): string[] {
  const lines = topHelp().split('\n');
  const start = lines.indexOf(title);
  const end = lines.indexOf('', start);
  return lines.slice(start + 1, end);
}

describe('the commands', () => {
  it("are exactly the orchestrator's operator actions", () => {
    expect(COMMANDS.map((command) => command.name)).toEqual([...OPERATOR_ACTIONS]);
  });
});

describe('docs/cli.md', () => {
  it('lists exactly the exit codes of CLI_EXIT_CODES, in the words of --help', () => {
    const defined = Object.values(CLI_EXIT_CODES).map(({ code, meaning }) => [String(code), meaning]);
    const help = helpBlock('Exit codes:').map((line) => {
      const match = /^ {2}([0-9]+) {2}(.+)$/.exec(line);
      return match ? [match[1], match[2]] : [line];
    });

    expect(tableRows(section(doc, 'Exit codes'))).toEqual(defined);
    expect(help).toEqual(defined);
  });

  it('documents every common option of --help, and no other', () => {
    const help = helpBlock('Common options:').map((line) => line.trim().split(/ {2,}/)[0]);
    const documented = tableRows(section(doc, 'Setup')).map(([option]) => option.replace(/`/g, ''));

    expect(documented).toEqual(help);
  });

  it('has a section for every command', () => {
    const headings = doc
      .split('\n')
      .flatMap((line) => (line.startsWith('### ') ? line.slice(4).split(' ') : []));

    for (const command of COMMANDS) expect(headings).toContain(command.name);
  });
});
