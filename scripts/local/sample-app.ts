/**
 * A minimal real Capistrano application in a real bare git repository: what a simulated
 * instance (or an instance test) deploys. The stage file is selfdeploy's own example.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** selfdeploy's example stage, copied into the app as config/deploy/local_<environment>.rb. */
export const EXAMPLE_STAGE_PATH = join(__dirname, '..', 'instance', 'capistrano', 'local_production.rb');

export interface SampleAppOptions {
  /** Directory for the bare repository and the author's working tree; created when missing. */
  readonly dir: string;
  /** Who reads the repository (the application user): the bare repository is theirs. */
  readonly owner: { readonly uid: number; readonly gid: number };
  /**
   * Environments that get a local_<environment> stage.
   * @default ['production']
   */
  readonly environments?: readonly string[];
  /**
   * Branch the commits go to.
   * @default 'master'
   */
  readonly branch?: string;
  /**
   * Capistrano keep_releases.
   * @default 2
   */
  readonly keepReleases?: number;
}

/** The sample application's repository and what an author does to it. */
export interface SampleApp {
  /** The bare repository: origin for the deploy checkout and Capistrano's repo_url. */
  readonly repoPath: string;
  readonly branch: string;
  /** Full SHA of the branch head. */
  head(): string;
  /** Commits `files` (path → content; default: a new version of app.txt) and pushes; returns the SHA. */
  commit(message: string, files?: Readonly<Record<string, string>>): string;
  /**
   * Pushes a commit whose deploy fails (returns the SHA): before the release goes live, or
   * after Capistrano has published it (REVISION written, `current` switched), as a failing
   * restart task does.
   */
  commitFailingDeploy(when?: 'before-publish' | 'after-publish'): string;
  /** Clones the repository to `path`, owned by the owner, as a machine image would hold it. */
  cloneTo(path: string): void;
}

const AUTHOR = {
  GIT_AUTHOR_NAME: 'Sample Author',
  GIT_AUTHOR_EMAIL: 'author@example.com',
  GIT_COMMITTER_NAME: 'Sample Author',
  GIT_COMMITTER_EMAIL: 'author@example.com',
};

/** Creates the bare repository with a first commit of the sample application. */
export function createSampleApp(options: SampleAppOptions): SampleApp {
  const branch = options.branch ?? 'master';
  const repoPath = join(options.dir, 'origin.git');
  const work = join(options.dir, 'work');
  mkdirSync(work, { recursive: true });
  // The author (this process) and the owner (the application user) differ when running as
  // root. A global config of our own trusts the owner's repository; `-c` would not reach the
  // upload-pack of a local clone, which runs with a cleaned environment.
  const gitConfig = join(options.dir, 'author.gitconfig');
  writeFileSync(gitConfig, '[safe]\n\tdirectory = *\n[init]\n\tdefaultBranch = master\n');
  const git = (cwd: string, ...args: string[]): string =>
    execFileSync('git', args, {
      cwd,
      encoding: 'utf8',
      env: { ...process.env, ...AUTHOR, GIT_CONFIG_GLOBAL: gitConfig },
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  const write = (files: Readonly<Record<string, string>>): void => {
    for (const [path, content] of Object.entries(files)) {
      mkdirSync(join(work, path, '..'), { recursive: true });
      writeFileSync(join(work, path), content);
    }
  };
  const chownTree = (path: string): void => {
    execFileSync('chown', ['-R', `${options.owner.uid}:${options.owner.gid}`, path]);
  };
  let version = 0;
  const commit = (message: string, files?: Readonly<Record<string, string>>): string => {
    version += 1;
    write(files ?? { 'app.txt': `version ${version}\n` });
    git(work, 'add', '--all');
    git(work, 'commit', '--quiet', '--message', message);
    git(work, 'push', '--quiet', 'origin', `HEAD:refs/heads/${branch}`);
    chownTree(repoPath);
    return git(work, 'rev-parse', 'HEAD');
  };

  git(options.dir, 'init', '--quiet', '--bare', `--initial-branch=${branch}`, repoPath);
  git(work, 'init', '--quiet', `--initial-branch=${branch}`);
  git(work, 'remote', 'add', 'origin', repoPath);
  const stage = readFileSync(EXAMPLE_STAGE_PATH, 'utf8');
  write({
    Capfile: [
      "require 'capistrano/setup'",
      "require 'capistrano/deploy'",
      "require 'capistrano/scm/git'",
      'install_plugin Capistrano::SCM::Git',
      '',
    ].join('\n'),
    'config/deploy.rb': [
      "lock '~> 3.17'",
      "set :application, 'sample'",
      `set :repo_url, ${JSON.stringify(repoPath)}`,
      `set :keep_releases, ${options.keepReleases ?? 2}`,
      'set :log_level, :info',
      '',
    ].join('\n'),
    ...Object.fromEntries(
      (options.environments ?? ['production']).map((env) => [`config/deploy/local_${env}.rb`, stage]),
    ),
    Gemfile: "source 'https://rubygems.org'\n\ngem 'capistrano', '~> 3.17'\n",
    '.gitignore': 'log/\n.bundle/\n',
  });
  // Resolves from the gems already installed: no gem server is needed.
  execFileSync('bundle', ['lock', '--local'], { cwd: work, stdio: 'ignore' });
  commit('Sample application');

  return {
    repoPath,
    branch,
    head: () => git(repoPath, 'rev-parse', `refs/heads/${branch}`),
    commit,
    commitFailingDeploy: (when = 'before-publish') => {
      const deployRb = readFileSync(join(work, 'config/deploy.rb'), 'utf8');
      const hook =
        when === 'before-publish' ? "before 'deploy:symlink:release'" : "after 'deploy:publishing'";
      return commit(`Deploy task that fails ${when}`, {
        'config/deploy.rb': `${deployRb}
namespace :sample do
  task :fail do
    raise 'sample deploy task failed on purpose'
  end
end
${hook}, 'sample:fail'
`,
      });
    },
    cloneTo: (path: string) => {
      mkdirSync(join(path, '..'), { recursive: true });
      git(options.dir, 'clone', '--quiet', '--branch', branch, repoPath, path);
      chownTree(path);
    },
  };
}
