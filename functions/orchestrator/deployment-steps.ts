// The decisions of an operator deployment, as plain functions over data: which instance is the
// canary, where a phase stands, which transition to claim, what a failed run reports, and
// what release a promotion leaves. deployments.ts does the I/O around them.
import { isTerminalStatus } from '../shared/event-patterns';
import { SELF_DEPLOY_EXIT_CODES } from '../shared/exit-codes';
import {
  type DeployFailure,
  type Deployment,
  type DeploymentPhase,
  type Release,
  SHA_PATTERN,
} from '../shared/operator-actions';
import { parseResultLine } from '../shared/result-line';

/** Whether a revision is already an exact commit, which needs no instance to resolve it. */
export function isFullSha(revision: string): boolean {
  return SHA_PATTERN.test(revision);
}

/** An InService instance a deployment could send to. */
export interface Candidate {
  readonly instanceId: string;
  /** Its SSM agent's PingStatus; undefined when it never registered. */
  readonly agent: string | undefined;
  /** Its `selfdeploy:revision` tag. */
  readonly sha: string | undefined;
}

/**
 * The canary: an instance whose agent is Online, preferably one that runs the release (a
 * drifted instance would blur what the new revision changed); the lowest id among equals,
 * so a repeated decision picks the same one.
 */
export function chooseCanary(
  candidates: readonly Candidate[],
  releaseSha: string | undefined,
): string | undefined {
  const online = candidates
    .filter((candidate) => candidate.agent === 'Online')
    .sort((a, b) => a.instanceId.localeCompare(b.instanceId));
  const current = online.find((candidate) => releaseSha !== undefined && candidate.sha === releaseSha);
  return (current ?? online[0])?.instanceId;
}

/** Where the commands of a deployment's current phase stand. */
export type PhaseVerdict =
  /** The phase has no command on record (the canary's may not be recorded yet). */
  | { readonly kind: 'unsent' }
  | { readonly kind: 'running' }
  | { readonly kind: 'succeeded' }
  | { readonly kind: 'failed'; readonly commandIds: readonly string[] };

/** The verdict on the current phase from its commands' statuses (undefined = not known yet). */
export function phaseVerdict(
  deployment: Pick<Deployment, 'phase' | 'commands'>,
  statuses: ReadonlyMap<string, string | undefined>,
): PhaseVerdict {
  const commands = deployment.commands.filter((command) => command.phase === deployment.phase);
  if (commands.length === 0) return { kind: 'unsent' };
  const status = (commandId: string) => statuses.get(commandId);
  if (commands.some(({ commandId }) => !isTerminalStatus(status(commandId)))) return { kind: 'running' };
  const failed = commands.filter(({ commandId }) => status(commandId) !== 'Success');
  return failed.length > 0
    ? { kind: 'failed', commandIds: failed.map(({ commandId }) => commandId) }
    : { kind: 'succeeded' };
}

/** Lambda runs an invocation at most 900 s: a claim older than this lost its claimer. */
export const STALE_CLAIM_MS = 16 * 60 * 1000;

/**
 * The transition number to claim next, or undefined while another execution holds a claim on
 * the deployment's next transition. `pending` describes the newest claim above the
 * deployment's step, if any: one left by another deployment, or older than any invocation
 * lives, was abandoned (its claimer died between claim and write), and the next number is free.
 */
export function nextClaim(
  deployment: Pick<Deployment, 'id' | 'step'>,
  claimedSteps: readonly number[],
  pending: { readonly deploymentId: string | undefined; readonly ageMs: number } | undefined,
): number | undefined {
  const above = claimedSteps.filter((step) => step > deployment.step);
  if (above.length === 0) return deployment.step + 1;
  const abandoned = pending && (pending.deploymentId !== deployment.id || pending.ageMs > STALE_CLAIM_MS);
  return abandoned ? Math.max(...above) + 1 : undefined;
}

/** What an instance's run of a command shows, as GetCommandInvocation reads it. */
export interface RunResult {
  readonly status: string | undefined;
  readonly statusDetails: string | undefined;
  readonly responseCode: number | undefined;
  readonly stdout: string;
}

/** The longest reason a deployment record keeps (the parameter holds at most 4 KB). */
const MAX_REASON_CHARS = 200;
/** Failures a deployment record keeps; the log has every one. */
export const MAX_RECORDED_FAILURES = 5;

const EXIT_CODE_NAMES = new Map<number, string>(
  Object.entries(SELF_DEPLOY_EXIT_CODES).map(([name, code]) => [code, name]),
);

/**
 * Why an instance's run failed: the script's own result line when it printed one (exit code and
 * reason), else what SSM says (ResponseCode −1: the script never started).
 */
export function failureOf(instanceId: string, commandId: string, run: RunResult): DeployFailure {
  const result = parseResultLine(run.stdout);
  const reported = typeof result?.exitCode === 'number' ? result.exitCode : undefined;
  const exitCode =
    reported ?? (run.responseCode !== undefined && run.responseCode >= 0 ? run.responseCode : undefined);
  const named = exitCode === undefined ? undefined : EXIT_CODE_NAMES.get(exitCode);
  const said = typeof result?.reason === 'string' && result.reason !== '' ? result.reason : undefined;
  const ssm = [run.status, run.statusDetails].filter(Boolean).join(': ') || 'no result';
  const reason = said ?? (named ? `${named} (${ssm})` : ssm);
  return {
    instanceId,
    ...(exitCode !== undefined && { exitCode }),
    reason: reason.slice(0, MAX_REASON_CHARS),
    commandId,
  };
}

/** The revision a successful run (a canary's, a launch's, a redeploy's) reports having deployed, when it is an exact SHA. */
export function resolvedSha(stdout: string): string | undefined {
  const revision = parseResultLine(stdout)?.revision;
  return typeof revision === 'string' && isFullSha(revision) ? revision : undefined;
}

/** The phase after one all of whose commands succeeded. */
export function phaseAfter(phase: DeploymentPhase): 'rest' | 'joiners' | 'promoted' {
  if (phase === 'canary') return 'rest';
  if (phase === 'rest') return 'joiners';
  return 'promoted';
}

/**
 * The release a promoted deployment leaves: its SHA, with the release it replaces as
 * `previous` (what rollback deploys). Deploying the release's own SHA again keeps its previous.
 */
export function promotedRelease(
  deployment: Pick<Deployment, 'id' | 'baseline' | 'reason'>,
  sha: string,
  current: Release | undefined,
  changedAt: string,
): Release {
  const replaced = deployment.baseline ?? current?.sha;
  const previous = replaced === sha ? current?.previous : replaced;
  return {
    sha,
    ...(previous !== undefined && { previous }),
    changedAt,
    reason: deployment.reason,
    deploymentId: deployment.id,
  };
}
