import { execFileSync } from 'node:child_process';
import { LocalRun, type LocalRunOptions } from '../../scripts/local/local-run';

/** Whether the OS user `name` exists on this machine. */
export function userExists(name: string): boolean {
  try {
    execFileSync('getent', ['passwd', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A starter of local runs for one test file; the run a test started is stopped after it. */
export function localRuns(): (options?: LocalRunOptions) => Promise<LocalRun> {
  let run: LocalRun | undefined;
  afterEach(async () => {
    await run?.stop();
    run = undefined;
  });
  return async (options = {}) => {
    run = await LocalRun.start(options);
    return run;
  };
}
