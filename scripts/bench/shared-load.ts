// The burst's load on what every real instance shares: Parameter Store and the git host.
// The burst runs the stand-in deploy, which makes no such requests, so the load is derived:
// what one real run of self-deploy.sh (and the Capistrano deploy it runs) asks of each, at
// the moments the burst's deploys started.

/**
 * Requests one deploy on a new instance makes, with the configuration they assume. Every
 * attempt is assumed to succeed: a failed one is repeated (SELFDEPLOY_RETRY_ATTEMPTS, 4 by
 * default, per step), adding one request each time.
 */
export const REQUESTS_PER_DEPLOY = {
  parameterStore: {
    count: 2,
    assumes:
      'a private repository and a pinned-revision parameter: self-deploy.sh reads the deploy key and the pinned revision once each (no deploy key: 1 fewer; no pinned-revision parameter: 1 fewer)',
  },
  gitHost: {
    count: 4,
    assumes:
      "self-deploy.sh's `git fetch` of the deploy checkout, then Capistrano's git:check (`git ls-remote`), git:clone (`git clone --mirror`, a new instance's first deploy only: the heaviest) and git:update (`git remote update`); a branch configured for the environment, so no `git remote set-head --auto`; the boot's clone of the deploy checkout (user data) is not counted",
  },
} as const;

export interface RequestRate {
  /** Requests per deploy (the model's). */
  readonly perDeploy: number;
  readonly requests: number;
  /** Most requests in any one second. */
  readonly peakPerSecond: number;
  /** Requests over the seconds from the first deploy's start to the last's (at least one). */
  readonly meanPerSecond: number;
}

export interface SharedLoad {
  readonly deploys: number;
  readonly parameterStore: RequestRate;
  readonly gitHost: RequestRate;
}

/** Most of `times` (ms) within any window of `windowMs` that starts at one of them. */
function peakInWindow(times: readonly number[], windowMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let peak = 0;
  let first = 0;
  for (let last = 0; last < sorted.length; last++) {
    while ((sorted[last] as number) - (sorted[first] as number) >= windowMs) first++;
    peak = Math.max(peak, last - first + 1);
  }
  return peak;
}

function rate(perDeploy: number, starts: readonly number[], peakStarts: number): RequestRate {
  const spanSeconds =
    starts.length === 0 ? 1 : Math.max(1, (Math.max(...starts) - Math.min(...starts)) / 1000);
  const requests = perDeploy * starts.length;
  return {
    perDeploy,
    requests,
    peakPerSecond: perDeploy * peakStarts,
    meanPerSecond: Math.round((requests / spanSeconds) * 10) / 10,
  };
}

/**
 * The load the deploys that started at `startTimes` (ms) put on Parameter Store and the git
 * host, each deploy's requests counted at its start (they come in its first seconds on a
 * real instance, so the peak is an upper estimate).
 */
export function sharedLoad(startTimes: readonly number[]): SharedLoad {
  const peakStarts = peakInWindow(startTimes, 1000);
  return {
    deploys: startTimes.length,
    parameterStore: rate(REQUESTS_PER_DEPLOY.parameterStore.count, startTimes, peakStarts),
    gitHost: rate(REQUESTS_PER_DEPLOY.gitHost.count, startTimes, peakStarts),
  };
}
