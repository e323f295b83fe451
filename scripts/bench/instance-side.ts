// Section 4: the instance side with real sshd, git and Capistrano — self-deploy.sh beside
// the plain recipe (fetch, reset, bundle install, cap deploy every time) on the same
// repository, the same application user and the same sshd, runs interleaved.
import { execFileSync, spawn } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Instance, startInstance } from '../../test/instance/instance';
import { hostPublicKeys } from '../local/sshd';
import { median, round } from './stats';

export interface DeployTimes {
  /** Median seconds of a first deploy on a fresh instance. */
  readonly first: number;
  /** Median seconds of a deploy after a new commit. */
  readonly redeploy: number;
  /** Median seconds of a run with nothing new to deploy. */
  readonly unchanged: number;
}

export interface InstanceFigures {
  readonly runs: number;
  readonly selfdeploy: DeployTimes;
  readonly plain: DeployTimes;
  /** Plain recipe's median over selfdeploy's, per step. */
  readonly ratio: DeployTimes;
}

/** The benchmark's own application user, apart from the tests' users. */
const BENCH_USER = 'sd-bench';
/** The plain recipe's key, as an image would hold it; set up outside the timed runs. */
const PLAIN_KEY = 'plain_recipe_key';
const PLAIN_KNOWN_HOSTS = 'plain_recipe_known_hosts';

type Step = keyof DeployTimes;

/** One fresh "instance image": a deploy checkout and an empty deploy_to for each contender. */
interface Fresh {
  readonly selfdeploy: { deployPath: string; appPath: string; stateDir: string };
  readonly plain: { deployPath: string; appPath: string };
}

function freshPaths(instance: Instance, run: number): Fresh {
  const base = join(instance.dir, `run${run}`);
  const fresh: Fresh = {
    selfdeploy: {
      deployPath: join(base, 'selfdeploy', 'deploy'),
      appPath: join(base, 'selfdeploy', 'app'),
      stateDir: join(base, 'selfdeploy', 'state'),
    },
    plain: { deployPath: join(base, 'plain', 'deploy'), appPath: join(base, 'plain', 'app') },
  };
  for (const paths of [fresh.selfdeploy, fresh.plain]) {
    instance.app.cloneTo(paths.deployPath);
    mkdirSync(paths.appPath, { recursive: true });
    chownSync(paths.appPath, instance.user.uid, instance.user.gid);
  }
  return fresh;
}

/** The plain recipe's SSH key and known_hosts, as a hand-made image would hold them. */
function preparePlainKey(instance: Instance): { key: string; knownHosts: string } {
  const ssh = join(instance.user.home, '.ssh');
  const key = join(ssh, PLAIN_KEY);
  const knownHosts = join(ssh, PLAIN_KNOWN_HOSTS);
  mkdirSync(ssh, { recursive: true, mode: 0o700 });
  rmSync(key, { force: true });
  rmSync(`${key}.pub`, { force: true });
  execFileSync('ssh-keygen', [
    '-q',
    '-t',
    'ecdsa',
    '-b',
    '256',
    '-m',
    'PEM',
    '-N',
    '',
    '-C',
    PLAIN_KEY,
    '-f',
    key,
  ]);
  const authorized = join(ssh, 'authorized_keys');
  const kept = existsSync(authorized)
    ? readFileSync(authorized, 'utf8')
        .split('\n')
        .filter((line) => line !== '' && !line.endsWith(` ${PLAIN_KEY}`))
    : [];
  writeFileSync(authorized, [...kept, readFileSync(`${key}.pub`, 'utf8').trim(), ''].join('\n'), {
    mode: 0o600,
  });
  const host = `[127.0.0.1]:${instance.sshd.port}`;
  writeFileSync(
    knownHosts,
    hostPublicKeys(instance.sshd.hostKeyDir)
      .map((k) => `${host} ${k}`)
      .join('\n'),
  );
  for (const path of [ssh, key, `${key}.pub`, authorized, knownHosts]) {
    chownSync(path, instance.user.uid, instance.user.gid);
  }
  return { key, knownHosts };
}

/** Runs `script` with sh as the application user with exactly `env`; resolves with its seconds. */
function timedAsAppUser(instance: Instance, script: string, env: Record<string, string>): Promise<number> {
  const assignments = Object.entries({
    HOME: instance.user.home,
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    LANG: 'C.UTF-8',
    ...env,
  }).map(([name, value]) => `${name}=${value}`);
  const command = ['env', '-i', ...assignments, 'sh', '-c', script];
  const [program, ...args] =
    process.getuid?.() === 0 ? ['runuser', '-u', instance.user.name, '--', ...command] : command;
  return timed(program ?? 'env', args);
}

function timed(program: string, args: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(program, args, {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      cwd: '/',
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve((performance.now() - started) / 1000);
      else reject(new Error(`${program} exited with ${code}: ${stderr.slice(-2000)}`));
    });
  });
}

/**
 * The plain recipe most guides show, as the application user in its checkout. It would
 * normally switch host key checking off; here it uses the same stage file and SSH settings
 * as selfdeploy, so only the work done differs.
 */
const PLAIN_RECIPE = [
  'cd "$DEPLOY_PATH"',
  'git fetch --quiet origin',
  'git reset --quiet --hard origin/master',
  'bundle install --quiet',
  'bundle exec cap local_production deploy',
].join(' && ');

function runPlain(instance: Instance, paths: Fresh['plain'], plainKey: { key: string; knownHosts: string }) {
  return timedAsAppUser(instance, PLAIN_RECIPE, {
    DEPLOY_PATH: paths.deployPath,
    SELFDEPLOY_APP_USER: instance.user.name,
    SELFDEPLOY_SSH_PORT: String(instance.sshd.port),
    SELFDEPLOY_REVISION: instance.app.branch,
    SELFDEPLOY_APP_PATH: paths.appPath,
    SELFDEPLOY_SSH_KEY: plainKey.key,
    SELFDEPLOY_KNOWN_HOSTS: plainKey.knownHosts,
    SELFDEPLOY_MIGRATE: 'false',
    // The repository is a local path: git never uses SSH here.
    SELFDEPLOY_GIT_SSH_COMMAND: 'ssh',
  });
}

async function runSelfdeploy(instance: Instance, paths: Fresh['selfdeploy']): Promise<number> {
  const started = performance.now();
  const result = await instance.run({
    SELFDEPLOY_DEPLOY_PATH: paths.deployPath,
    SELFDEPLOY_APP_PATH: paths.appPath,
    SELFDEPLOY_STATE_DIR: paths.stateDir,
  });
  const seconds = (performance.now() - started) / 1000;
  if (result.exitCode !== 0)
    throw new Error(`self-deploy.sh exited with ${result.exitCode}: ${result.stderr}`);
  return seconds;
}

function check(what: string, appPath: string, expected: string): void {
  const path = join(appPath, 'current', 'REVISION');
  const deployed = existsSync(path) ? readFileSync(path, 'utf8').trim() : 'nothing';
  if (deployed !== expected) throw new Error(`${what} left ${deployed} deployed, not ${expected}`);
}

/**
 * `runs` times: a first deploy on a fresh checkout, a redeploy after a new commit and a run
 * with nothing new, each by both contenders — in alternating order, so neither always goes
 * first on a warm cache.
 */
export async function measureInstanceSide(runs: number): Promise<InstanceFigures> {
  const instance = await startInstance(BENCH_USER);
  try {
    const plainKey = preparePlainKey(instance);
    const times = {
      selfdeploy: { first: [] as number[], redeploy: [] as number[], unchanged: [] as number[] },
      plain: { first: [] as number[], redeploy: [] as number[], unchanged: [] as number[] },
    };
    for (let run = 0; run < runs; run++) {
      const fresh = freshPaths(instance, run);
      for (const step of ['first', 'redeploy', 'unchanged'] as const satisfies readonly Step[]) {
        if (step === 'redeploy') instance.app.commit(`Bench commit ${run}`);
        const head = instance.app.head();
        const contenders = [
          async () => {
            times.selfdeploy[step].push(await runSelfdeploy(instance, fresh.selfdeploy));
            check('self-deploy.sh', fresh.selfdeploy.appPath, head);
          },
          async () => {
            times.plain[step].push(await runPlain(instance, fresh.plain, plainKey));
            check('the plain recipe', fresh.plain.appPath, head);
          },
        ];
        if (run % 2 === 1) contenders.reverse();
        for (const contender of contenders) await contender();
      }
      rmSync(join(instance.dir, `run${run}`), { recursive: true, force: true });
    }
    const medians = (series: Record<Step, number[]>): DeployTimes => ({
      first: round(median(series.first)),
      redeploy: round(median(series.redeploy)),
      unchanged: round(median(series.unchanged)),
    });
    const selfdeploy = medians(times.selfdeploy);
    const plain = medians(times.plain);
    return {
      runs,
      selfdeploy,
      plain,
      ratio: {
        first: round(plain.first / selfdeploy.first),
        redeploy: round(plain.redeploy / selfdeploy.redeploy),
        unchanged: round(plain.unchanged / selfdeploy.unchanged),
      },
    };
  } finally {
    await instance.stop();
  }
}
