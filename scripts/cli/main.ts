/** `npx selfdeploy …`: the operator's CLI (docs/cli.md). selfdeploy.cjs runs this through tsx. */
import { setTimeout as sleep } from 'node:timers/promises';
import { run } from './run';

run(process.argv.slice(2), {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
  sleep: (ms) => sleep(ms),
  now: Date.now,
}).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  },
);
