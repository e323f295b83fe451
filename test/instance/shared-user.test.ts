/**
 * Simulated instances of one machine share one OS user (a developer's run has only its
 * own): each state directory must keep its own localhost key, known_hosts and
 * authorized_keys entry, or one instance's run breaks another's.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Instance, startInstance, userWritableDir, waitForFile } from './instance';

jest.setTimeout(90_000);

let first: Instance;
let second: Instance;

beforeAll(async () => {
  first = await startInstance('sd-shared');
  second = await startInstance('sd-shared', { user: first.user });
});

afterAll(async () => {
  await second?.stop();
  await first?.stop();
});

test('two instances with one user but their own state directories deploy interleaved, neither breaking the other', async () => {
  const markers = userWritableDir(first, 'interleave');
  const trusted = join(markers, 'first-trusted-localhost');
  const release = join(markers, 'second-done');
  // The first run stops after it has set up its trust, until the second has run whole.
  const firstRun = first.run({
    SELFDEPLOY_DEPLOY_COMMAND: `touch ${trusted} && while [ ! -e ${release} ]; do sleep 0.1; done && bundle exec cap "local_$SELFDEPLOY_ENVIRONMENT" deploy`,
  });
  await waitForFile(trusted);

  const secondRun = await second.run();
  writeFileSync(release, '');
  const firstResult = await firstRun;
  const again = await Promise.all([first.run(), second.run()]);

  expect(secondRun.exitCode).toBe(0);
  expect(firstResult.exitCode).toBe(0);
  expect(first.currentRevision()).toBe(first.app.head());
  expect(second.currentRevision()).toBe(second.app.head());
  expect(again.map((run) => run.exitCode)).toEqual([0, 0]);
  const entries = readFileSync(join(first.user.home, '.ssh', 'authorized_keys'), 'utf8')
    .split('\n')
    .filter((line) => line.includes(' selfdeploy-localhost-'));
  expect(entries).toHaveLength(2);
});
