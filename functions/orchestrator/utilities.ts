// Small helpers with no knowledge of selfdeploy: batching, bounded concurrency, backoff.

/** Splits `items` into chunks of at most `size`. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

/** Runs `work` over `items` with at most `limit` in flight, keeping the results in order. */
export async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

const BACKOFF_BASE_MS = 1_000;
const BACKOFF_CAP_MS = 20_000;

/** Full-jitter exponential backoff: uniform in [0, min(cap, base·2^attempt)), at least 100 ms. */
export function backoffMs(attempt: number, random: number): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return Math.max(100, Math.floor(random * ceiling));
}

/**
 * `ceiling` jittered into its upper half, rounded up to whole seconds, by `key` rather than
 * chance: the same key always gives the same delay, so copies of one message come back together.
 */
export function upperHalfJitter(ceiling: number, key: string): number {
  // FNV-1a: a number in [0, 1) that is the same for the same key.
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return Math.ceil(ceiling * (0.5 + hash / 2 ** 33));
}

/** What was thrown, as an Error. */
export function asError(thrown: unknown): Error {
  return thrown instanceof Error ? thrown : new Error(String(thrown));
}

/** Runs `work`, turning what it throws into the result: one item's failure is only its own. */
export async function settled<T>(work: () => Promise<T>): Promise<T | Error> {
  try {
    return await work();
  } catch (error) {
    return asError(error);
  }
}
