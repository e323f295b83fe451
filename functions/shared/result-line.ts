/** Prefix of the one machine-readable line self-deploy.sh ends its output with. */
export const RESULT_LINE_PREFIX = 'SELFDEPLOY_RESULT ';

/** The last result line in a run's output, parsed; undefined when absent or unreadable. */
export function parseResultLine(stdout: string): Record<string, unknown> | undefined {
  const line = stdout
    .split('\n')
    .reverse()
    .find((candidate) => candidate.startsWith(RESULT_LINE_PREFIX));
  if (!line) return undefined;
  try {
    const value: unknown = JSON.parse(line.slice(RESULT_LINE_PREFIX.length));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
