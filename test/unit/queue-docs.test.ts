import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { relookDelaySeconds } from '../../functions/orchestrator/agent-wait';
import {
  MAX_RECEIVE_COUNT,
  QUEUE_BATCH_SIZE,
  QUEUE_BATCHING_WINDOW_SECONDS,
  QUEUE_COUNT,
  QUEUE_RETENTION_SECONDS,
  VISIBILITY_TIMEOUT_FUNCTION_TIMEOUTS,
} from '../../functions/shared/event-queue';
import { TOP_LEVEL_SETTINGS } from '../../functions/shared/group-settings';

// The docs restate how the event queues are set up (how many, batch size, window, receives
// before the dead-letter queue, the re-look delays, the default concurrency, the reserved
// concurrency the mappings need). Each statement is found
// by its wording, in every doc, and must say what the code does; the docs that explain the
// queue must make each statement they are listed for.

const ROOT = resolve(__dirname, '..', '..');
const DOC_FILES = [
  'README.md',
  ...readdirSync(join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`),
];
/** A doc's text with every run of whitespace made one space, so a statement may wrap. */
const text = (path: string) => readFileSync(join(ROOT, path), 'utf8').replace(/\s+/g, ' ');

/** What the re-look delays are, as the docs word them: the first, the growth factor, the cap (seconds). */
interface Delays {
  readonly first: number;
  readonly growth: number;
  readonly cap: number;
}

/**
 * Whether `relookDelaySeconds` follows `delays`: at each attempt every delay lies in the upper
 * half of min(cap, first × growth^attempt), rounded up, and over many waits the jitter reaches
 * that bound.
 */
function delaysFollow(delays: Delays): boolean {
  const tokens = Array.from(
    { length: 4000 },
    (_, i) => `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`,
  );
  for (let attempt = 0; attempt <= 12; attempt++) {
    const bound = Math.min(delays.cap, delays.first * delays.growth ** attempt);
    const seen = tokens.map((token) => relookDelaySeconds({ token, attempt }, 1e6));
    if (Math.max(...seen) !== Math.ceil(bound) || Math.min(...seen) < Math.ceil(bound / 2)) return false;
  }
  return true;
}

/** A number as the docs write it: digits, or a word ("two queues", "twice maxConcurrency"). */
const WORD_NUMBERS: Readonly<Record<string, number>> = { one: 1, two: 2, three: 3, twice: 2 };
const numberOf = (written: string) => WORD_NUMBERS[written.toLowerCase()] ?? Number.parseFloat(written);

/** One number (or set of numbers) the docs restate: how it is worded, what code says, where it must be said. */
interface Fact {
  readonly name: string;
  readonly wording: RegExp;
  readonly holds: (numbers: readonly number[]) => boolean;
  readonly expected: string;
  readonly statedIn: readonly string[];
}

const functionTimeoutSeconds = Number(TOP_LEVEL_SETTINGS.functionTimeout.default);
const defaultMaxConcurrency = Number(TOP_LEVEL_SETTINGS.maxConcurrency.default);

const FACTS: readonly Fact[] = [
  {
    name: 'queue count',
    wording: /\b(one|two|three|\d+) event queues\b/gi,
    holds: ([count]) => count === QUEUE_COUNT,
    expected: `${QUEUE_COUNT}`,
    statedIn: ['docs/how-it-works.md', 'docs/deploying.md', 'docs/operations.md'],
  },
  {
    // Each mapping may run maxConcurrency executions; a bare "at least `maxConcurrency`" is stale.
    name: 'reserved concurrency the mappings need',
    wording: /(?:at least|below) (?:(twice|\d+) (?:× )?)?`?maxConcurrency\b/gi,
    holds: ([times]) => times === QUEUE_COUNT,
    expected: `${QUEUE_COUNT} × maxConcurrency`,
    statedIn: ['docs/how-it-works.md', 'docs/deploying.md', 'docs/operations.md'],
  },
  {
    name: 'batch size',
    wording: /batch(?:es)? of up to (\d+) messages/gi,
    holds: ([size]) => size === QUEUE_BATCH_SIZE,
    expected: `${QUEUE_BATCH_SIZE}`,
    statedIn: ['docs/how-it-works.md', 'docs/operations.md', 'docs/deploying.md'],
  },
  {
    name: 'batching window',
    wording: /batching window of (\d+) s\b/gi,
    holds: ([seconds]) => seconds === QUEUE_BATCHING_WINDOW_SECONDS,
    expected: `${QUEUE_BATCHING_WINDOW_SECONDS}`,
    statedIn: ['docs/how-it-works.md', 'docs/operations.md', 'docs/deploying.md'],
  },
  {
    name: 'receives before the dead-letter queue',
    wording: /(\d+)(?: more)? receives|"maxReceiveCount\\?":(\d+)/gi,
    holds: ([count]) => count === MAX_RECEIVE_COUNT,
    expected: `${MAX_RECEIVE_COUNT}`,
    statedIn: ['docs/how-it-works.md', 'docs/operations.md', 'docs/deploying.md', 'docs/local-run.md'],
  },
  {
    name: 're-look delays',
    wording: /after (\d+) s, growing ×([\d.]+) up to (\d+) s/gi,
    holds: ([first = 0, growth = 0, cap = 0]) => delaysFollow({ first, growth, cap }),
    expected: "relookDelaySeconds' own bounds",
    statedIn: ['docs/how-it-works.md'],
  },
  {
    name: 'default maxConcurrency',
    wording: /`maxConcurrency`,? \(?default (\d+)/gi,
    holds: ([count]) => count === defaultMaxConcurrency,
    expected: `${defaultMaxConcurrency}`,
    statedIn: ['README.md', 'docs/how-it-works.md', 'docs/operations.md'],
  },
  {
    name: 'visibility timeout',
    wording: /(\d+) × `functionTimeout`, (\d+) minutes by default/gi,
    holds: ([times, minutes]) =>
      times === VISIBILITY_TIMEOUT_FUNCTION_TIMEOUTS &&
      minutes === (VISIBILITY_TIMEOUT_FUNCTION_TIMEOUTS * functionTimeoutSeconds) / 60,
    expected: `${VISIBILITY_TIMEOUT_FUNCTION_TIMEOUTS} × ${functionTimeoutSeconds / 60} minutes`,
    statedIn: ['docs/how-it-works.md', 'docs/operations.md'],
  },
  {
    name: 'retention',
    wording: /kept up to (\d+) hours/gi,
    holds: ([hours]) => hours === QUEUE_RETENTION_SECONDS / 3600,
    expected: `${QUEUE_RETENTION_SECONDS / 3600}`,
    statedIn: ['docs/how-it-works.md'],
  },
];

/** Every statement of `fact` in `path`: its words and its numbers. */
function statements(fact: Fact, path: string): { words: string; numbers: number[] }[] {
  return [...text(path).matchAll(fact.wording)].map((match) => ({
    words: match[0],
    numbers: match
      .slice(1)
      .filter((group): group is string => group !== undefined)
      .map(numberOf),
  }));
}

describe('the docs state the event queues as the code sets them up', () => {
  it.each(FACTS.map((fact) => [fact.name, fact] as const))(
    '%s: every statement matches the code',
    (_, fact) => {
      const wrong = DOC_FILES.flatMap((path) =>
        statements(fact, path)
          .filter(({ numbers }) => !fact.holds(numbers))
          .map(({ words }) => `${path}: "${words}" (code: ${fact.expected})`),
      );
      expect(wrong).toEqual([]);
    },
  );

  it.each(FACTS.map((fact) => [fact.name, fact] as const))(
    '%s: stated where the queue is explained',
    (_, fact) => {
      const silent = fact.statedIn.filter((path) => statements(fact, path).length === 0);
      expect(silent).toEqual([]);
    },
  );
});
