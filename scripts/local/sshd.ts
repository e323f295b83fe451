/**
 * A real OpenSSH sshd on a loopback port, with its own host keys and configuration under a
 * given directory: what a simulated instance (or an instance test) deploys to. Plus the
 * unprivileged application user that logs in to it.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

/** The sshd binary; Debian and Amazon Linux both install it here. */
export const SSHD_PATH = '/usr/sbin/sshd';

/** Host key types generated for each sshd (net-ssh without extra gems verifies ECDSA). */
const HOST_KEY_TYPES = ['ed25519', 'ecdsa'] as const;
const START_TIMEOUT_MS = 5_000;

export interface SshdOptions {
  /** Directory for host keys, configuration, pid and log; created when missing. */
  readonly dir: string;
  /**
   * Port on 127.0.0.1.
   * @default a free port
   */
  readonly port?: number;
}

/** A running sshd. */
export interface Sshd {
  readonly port: number;
  /** Directory holding ssh_host_*_key(.pub), the SELFDEPLOY_HOST_KEY_DIR of this "instance". */
  readonly hostKeyDir: string;
  readonly configPath: string;
  /** sshd's own log (LogLevel VERBOSE), for when a login is refused. */
  readonly logPath: string;
  /** Replaces the host keys and restarts sshd on the same port, as on a new instance from an image. */
  regenerateHostKeys(): Promise<void>;
  /** Stops sshd; safe to call twice. */
  stop(): Promise<void>;
}

/** Starts sshd on 127.0.0.1 with fresh host keys under `options.dir`. */
export async function startSshd(options: SshdOptions): Promise<Sshd> {
  const hostKeyDir = join(options.dir, 'host-keys');
  const configPath = join(options.dir, 'sshd_config');
  const logPath = join(options.dir, 'sshd.log');
  mkdirSync(hostKeyDir, { recursive: true, mode: 0o755 });
  generateHostKeys(hostKeyDir);
  if (process.getuid?.() === 0) {
    // Debian's sshd refuses to start without its privilege separation directory.
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  }

  const port = options.port ?? (await freePort());
  writeFileSync(configPath, sshdConfig(port, hostKeyDir, join(options.dir, 'sshd.pid')));
  let child = await launch(configPath, logPath, port);

  return {
    port,
    hostKeyDir,
    configPath,
    logPath,
    async regenerateHostKeys() {
      await stopChild(child);
      generateHostKeys(hostKeyDir, true);
      child = await launch(configPath, logPath, port);
    },
    async stop() {
      await stopChild(child);
    },
  };
}

/** Serialises useradd/userdel between parallel runs (they lock /etc/passwd and fail when it is busy). */
const USERS_LOCK = join(tmpdir(), 'selfdeploy-app-users.lock');

/** An application user: who owns the app and logs in over SSH. */
export interface AppUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
  readonly home: string;
}

/**
 * Makes sure the unprivileged user `name` exists and can log in with a key; when not root,
 * the current user is the application user (nobody else can be logged in as).
 * Idempotent and safe to call from parallel test workers.
 */
export function ensureAppUser(name: string): AppUser {
  if (process.getuid?.() !== 0) {
    const me = userInfo();
    return { name: me.username, uid: me.uid, gid: me.gid, home: me.homedir };
  }
  // useradd leaves the password locked ('!'); with UsePAM no, sshd then refuses even key
  // logins, so the password becomes '*' (no password login, account not locked).
  underUsersLock(
    'getent passwd "$1" >/dev/null || useradd --create-home --shell /bin/bash "$1"; usermod -p "*" "$1"',
    name,
  );
  const [, , uid, gid, , home] = execFileSync('getent', ['passwd', name], { encoding: 'utf8' })
    .trim()
    .split(':');
  if (uid === undefined || gid === undefined || home === undefined) {
    throw new Error(`getent passwd ${name} returned no complete entry`);
  }
  return { name, uid: Number(uid), gid: Number(gid), home };
}

/** Linux limits user names to 32 characters. */
const MAX_USER_NAME = 32;

/**
 * A user name of its own for one run (`sd-<purpose>-<8 hex digits>`), so that two runs on
 * one machine never share an application user, its home or its known_hosts.
 */
export function runUserName(purpose: string): string {
  const name = `sd-${purpose}-${randomBytes(4).toString('hex')}`;
  if (!/^[a-z][a-z0-9-]*$/.test(purpose) || name.length > MAX_USER_NAME) {
    throw new Error(`a run user's purpose must be a short lower-case word, got ${JSON.stringify(purpose)}`);
  }
  return name;
}

/**
 * Removes a user `ensureAppUser` created, with its home; nothing when not root (the current
 * user was used). Safe to call twice.
 */
export function removeAppUser(name: string): void {
  if (process.getuid?.() !== 0) return;
  // --force: a process the deploy left behind (a detached git gc) must not keep the user.
  underUsersLock(
    'getent passwd "$1" >/dev/null || exit 0; userdel --force --remove "$1" 2>/dev/null; if getent passwd "$1" >/dev/null; then userdel --force "$1"; fi',
    name,
  );
}

/** Runs `script` (sh, with the user name as $1) while holding the lock on this machine's users. */
function underUsersLock(script: string, name: string): void {
  execFileSync('flock', ['--wait', '60', USERS_LOCK, 'sh', '-c', script, 'sh', name], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

function sshdConfig(port: number, hostKeyDir: string, pidPath: string): string {
  return [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    ...HOST_KEY_TYPES.map((type) => `HostKey ${join(hostKeyDir, `ssh_host_${type}_key`)}`),
    `PidFile ${pidPath}`,
    'UsePAM no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    'AuthorizedKeysFile .ssh/authorized_keys',
    'PermitRootLogin no',
    'StrictModes yes',
    'UseDNS no',
    'PrintMotd no',
    'LogLevel VERBOSE',
    'Subsystem sftp internal-sftp',
    '',
  ].join('\n');
}

function generateHostKeys(hostKeyDir: string, replace = false): void {
  for (const type of HOST_KEY_TYPES) {
    const key = join(hostKeyDir, `ssh_host_${type}_key`);
    if (existsSync(key) && !replace) continue;
    rmSync(key, { force: true });
    rmSync(`${key}.pub`, { force: true });
    execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', `selfdeploy-local-${type}`, '-f', key]);
  }
}

async function launch(configPath: string, logPath: string, port: number): Promise<ChildProcess> {
  const child = spawn(SSHD_PATH, ['-D', '-f', configPath, '-E', logPath], { stdio: 'ignore' });
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (code, signal) =>
      reject(new Error(`sshd exited (${code ?? signal}) while starting; see ${logPath}:\n${tail(logPath)}`)),
    );
    child.once('error', reject);
  });
  exited.catch(() => undefined);
  await Promise.race([waitForPort(port, START_TIMEOUT_MS), exited]);
  return child;
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port }, () => {
        socket.end();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline)
      throw new Error(`sshd did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A port nothing listens on right now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

function tail(path: string): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Host key files in `dir`, for tests that compare what is trusted. */
export function hostPublicKeys(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => /^ssh_host_.*_key\.pub$/.test(name))
    .map((name) => readFileSync(join(dir, name), 'utf8').trim());
}
