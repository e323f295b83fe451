// Readers of the markdown docs, for the tests that check a doc restates the code.

/** The lines of the `## heading` section of a markdown text, up to the next `## `. */
export function section(markdown: string, heading: string): string[] {
  const lines = markdown.split('\n');
  const start = lines.indexOf(`## ${heading}`);
  if (start < 0) throw new Error(`no "## ${heading}" section`);
  const end = lines.findIndex((line, index) => index > start && line.startsWith('## '));
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

/** The first two cells of each body row (not the header) of the markdown tables in `lines`. */
export function tableRows(lines: readonly string[]): [string, string][] {
  return lines.flatMap((line, index) => {
    const match = /^\| ([^|]+?) \| ([^|]+?) \|/.exec(line);
    const isHeader = lines[index + 1]?.startsWith('|---') ?? false;
    return match && !isHeader ? [[match[1] as string, match[2] as string] as [string, string]] : [];
  });
}
