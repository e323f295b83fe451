/**
 * A repository whose default branch is `main`: with no `branches` setting, every environment
 * deploys origin's default branch, whatever it is called — run for real (git, sshd, Capistrano).
 */
import { execFileSync } from 'node:child_process';
import { buildSelfDeployDocument } from '../../infra/document';
import { runDocument } from '../../scripts/local/run-document';
import { type Instance, parseResult, startInstance } from './instance';

jest.setTimeout(60_000);

let instance: Instance;
let mainHead: string;

beforeAll(async () => {
  instance = await startInstance('sd-main');
  // The sample repository starts on master; its owner renames it, as GitHub's default now is.
  const git = (...args: string[]) =>
    execFileSync('git', ['-c', 'safe.directory=*', '--git-dir', instance.app.repoPath, ...args], {
      encoding: 'utf8',
    }).trim();
  git('branch', '-m', 'master', 'main');
  execFileSync('chown', ['-R', `${instance.user.uid}:${instance.user.gid}`, instance.app.repoPath]);
  expect(git('symbolic-ref', 'HEAD')).toBe('refs/heads/main');
  mainHead = git('rev-parse', 'refs/heads/main');
});
afterAll(async () => {
  await instance?.stop();
});

test("the script deploys origin's default branch main when no branches are set", async () => {
  const run = await instance.run({ SELFDEPLOY_ENVIRONMENT: 'production' });

  expect(run.exitCode).toBe(0);
  expect(run.result).toMatchObject({ status: 'success', revision: mainHead, source: 'branch:main' });
  expect(instance.currentRevision()).toBe(mainHead);
});

test('the document built with its default options deploys main too', async () => {
  const document = buildSelfDeployDocument({ stateDirectory: instance.stateDir });

  const result = await runDocument({
    document,
    parameters: { appUser: instance.user.name, deployPath: instance.deployPath, appPath: instance.appPath },
    env: {
      SELFDEPLOY_SSH_PORT: String(instance.sshd.port),
      SELFDEPLOY_HOST_KEY_DIR: instance.sshd.hostKeyDir,
    },
  });

  expect(result.exitCode).toBe(0);
  expect(parseResult(result.stdout)).toMatchObject({
    status: 'success',
    environment: 'production',
    revision: mainHead,
    source: 'branch:main',
  });
});
