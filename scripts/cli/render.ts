/** The orchestrator's answers as text for a terminal: plain functions over the contract's types. */
import type {
  Deployment,
  GroupStatus,
  InstanceStatus,
  OperatorAnswer,
  Release,
  StandbyBatch,
} from '../../functions/shared/operator-actions';

/** Above this many instances, following a deployment prints a counter line instead of a line per instance. */
export const COMPACT_ABOVE_INSTANCES = 20;

/** A SHA as git abbreviates it; `-` when unknown. */
const shortSha = (sha: string | undefined): string => (sha === undefined ? '-' : sha.slice(0, 7));

/** Rows padded into columns; the first row is the header. */
function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, index) => {
      widths[index] = Math.max(widths[index] ?? 0, cell.length);
    });
  }
  return rows.map((row) =>
    row
      .map((cell, index) => (index === row.length - 1 ? cell : cell.padEnd(widths[index] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}

function describeRelease(release: Release | undefined): string {
  if (release === undefined) return 'none yet: launches follow the branch until the first successful deploy';
  const by = release.deploymentId === undefined ? '' : ` (${release.deploymentId})`;
  const previous = release.previous === undefined ? '' : `; previous ${shortSha(release.previous)}`;
  return `${release.sha} since ${release.changedAt}: ${release.reason}${by}${previous}`;
}

/** How many instances failed (or were given up on): the record names at most a few. */
function failedCount(deployment: Deployment): number {
  return deployment.failureCount ?? deployment.failures.length;
}

/** One deployment (or drift repair) in a line: id, what, SHA, phase, failures. */
function describeDeployment(deployment: Deployment): string {
  const target = deployment.driftRepair
    ? `drift repair of ${deployment.driftRepair.join(', ')} to ${shortSha(deployment.sha)}`
    : deployment.kind === 'rollback'
      ? `rollback to ${shortSha(deployment.sha ?? deployment.requested)}`
      : `deploy of ${deployment.requested}${deployment.sha === undefined || deployment.sha === deployment.requested ? '' : ` (${shortSha(deployment.sha)})`}`;
  const canary = deployment.canary === undefined ? '' : `, canary ${deployment.canary}`;
  const count = failedCount(deployment);
  const failed = count === 0 ? '' : `, ${count} failed`;
  return `${deployment.id} ${target}: ${deployment.phase}${canary}${failed}`;
}

/** A Standby deploy's batch out of service, its stage, and why it waits on the group's sizes. */
function describeStandby(batch: StandbyBatch): string {
  const out =
    batch.instanceIds.length === 0
      ? 'no batch out of service'
      : `${batch.instanceIds.join(', ')} ${batch.stage}`;
  return batch.waiting === undefined ? out : `${out}; waiting: ${batch.waiting}`;
}

/** The `standby` row of a deployment that has a batch out of service or waits for room; none else. */
function standbyRows(label: string, deployment: Deployment | undefined): string[][] {
  const batch = deployment?.standby;
  if (batch === undefined || (batch.instanceIds.length === 0 && batch.waiting === undefined)) return [];
  return [[label, describeStandby(batch)]];
}

/** While a deployment is followed: why its Standby batch waits, when it does. */
export function waitingLine(deployment: Deployment): string | undefined {
  const waiting = deployment.standby?.waiting;
  return waiting === undefined ? undefined : `${deployment.id} waits: ${waiting}`;
}

function lastDeploy(instance: InstanceStatus): string {
  const last = instance.lastDeploy;
  if (last === undefined) return '-';
  const code = last.exitCode === undefined ? '' : ` (exit ${last.exitCode})`;
  return `${last.result}${code} ${last.at}`;
}

/** `status`: the group's release, pause, deployments, last repair, and the instance table with drift marked. */
export function renderStatus(status: GroupStatus): string[] {
  const follow =
    status.follow === 'release' ? 'launches deploy the release' : 'launches follow the branch head (riskier)';
  const paused = status.paused
    ? `since ${status.paused.since}: ${status.paused.reason} (launches skip the deploy)`
    : 'no';
  const instances =
    status.instances.length === 0
      ? ['no instances']
      : table([
          ['INSTANCE', 'LIFECYCLE', 'AGENT', 'SHA', 'LAST DEPLOY', 'DRIFT'],
          ...status.instances.map((i) => [
            i.instanceId,
            i.lifecycleState,
            i.agent,
            shortSha(i.sha),
            lastDeploy(i),
            i.drift ? 'drift' : '',
          ]),
        ]);
  return [
    ...table([
      ['group', `${status.group} (${follow})`],
      ['release', describeRelease(status.release)],
      ['paused', paused],
      ['deployment', status.deployment ? describeDeployment(status.deployment) : 'none in flight'],
      ...standbyRows('standby', status.deployment),
      ...(status.lastDeployment
        ? [['last', `${describeDeployment(status.lastDeployment)} at ${status.lastDeployment.updatedAt}`]]
        : []),
      ...standbyRows('left', status.lastDeployment),
      ...(status.lastRepair
        ? [['repair', `${describeDeployment(status.lastRepair)} at ${status.lastRepair.updatedAt}`]]
        : []),
      ...standbyRows('repair left', status.lastRepair),
    ]),
    '',
    ...instances,
  ];
}

/** The text of any answer but status's (which has its own renderer). */
export function renderAnswer(answer: Exclude<OperatorAnswer, GroupStatus>): string[] {
  switch (answer.action) {
    case 'release':
      return [`${answer.group} release: ${describeRelease(answer.release)}`];
    case 'deploy':
    case 'rollback':
    case 'pause':
    case 'resume':
      return [answer.summary];
    case 'logs':
      if (answer.runs.length === 0) return [`no self-deploy runs found in ${answer.group}`];
      return answer.runs.flatMap((run) => [
        `== ${run.instanceId}  ${run.status}  command ${run.commandId}${run.requestedAt ? `  ${run.requestedAt}` : ''}`,
        ...run.outputTail.replace(/\n$/, '').split('\n'),
        '',
      ]);
  }
}

/** A line for an instance while a deployment is followed; it changes when any of its parts do. */
export function instanceLine(instance: InstanceStatus): string {
  return `${instance.instanceId}  ${instance.lifecycleState}  sha ${shortSha(instance.sha)}  last ${lastDeploy(instance)}`;
}

/** For a large group: how far the deployment is, in one line. */
export function counterLine(deployment: Deployment, instances: readonly InstanceStatus[]): string {
  const done = deployment.sha === undefined ? 0 : instances.filter((i) => i.sha === deployment.sha).length;
  const count = failedCount(deployment);
  const failed = count === 0 ? '' : `, ${count} failed`;
  return `${deployment.id} ${deployment.phase}: ${done}/${instances.length} at ${shortSha(deployment.sha)}${failed}`;
}

/** The end of a followed deployment: instance → SHA → result → failure reason. */
export function resultTable(deployment: Deployment, instances: readonly InstanceStatus[]): string[] {
  const failureOf = new Map(deployment.failures.map((f) => [f.instanceId, f]));
  const reason = (instanceId: string) => {
    const failure = failureOf.get(instanceId);
    if (failure === undefined) return '';
    return failure.exitCode === undefined ? failure.reason : `exit ${failure.exitCode}: ${failure.reason}`;
  };
  const result = (instance: InstanceStatus) => {
    if (failureOf.has(instance.instanceId)) return 'failed';
    if (deployment.sha !== undefined && instance.sha === deployment.sha) return 'deployed';
    if (deployment.phase === 'failed' && instance.sha !== undefined && instance.sha === deployment.baseline) {
      return 'kept release';
    }
    return 'not deployed';
  };
  const present = new Set(instances.map((i) => i.instanceId));
  const gone = deployment.failures.filter((f) => !present.has(f.instanceId));
  return [
    `${describeDeployment(deployment)}${deployment.sha === undefined ? '' : ` — ${deployment.sha}`}`,
    ...table([
      ['INSTANCE', 'SHA', 'RESULT', 'FAILURE'],
      ...instances.map((i) => [i.instanceId, shortSha(i.sha), result(i), reason(i.instanceId)]),
      ...gone.map((f) => [f.instanceId, '-', 'failed (left the group)', reason(f.instanceId)]),
    ]),
    // The record names the first few failures; the log has every one.
    ...(failedCount(deployment) > deployment.failures.length
      ? [`and ${failedCount(deployment) - deployment.failures.length} more failed (the log names every one)`]
      : []),
    // What the deployment left in Standby (a failed batch restoring, or kept there by MaxSize).
    ...standbyRows('standby', deployment).map(([label, text]) => `${label}: ${text}`),
  ];
}
