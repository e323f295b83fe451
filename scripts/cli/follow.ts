/**
 * Following a deployment: polls `status` until the deployment is no longer in flight, printing
 * what changed, then the result table. The deployment advances in the orchestrator (status
 * events, nudges, the reconcile schedule), not here: stopping the CLI stops only the watching.
 */
import type { Deployment, GroupStatus } from '../../functions/shared/operator-actions';
import type { Invoke } from './invoke';
import { COMPACT_ABOVE_INSTANCES, counterLine, instanceLine, waitingLine } from './render';

/** How a followed deployment ended: the status that showed it ended, and its record there. */
interface Followed {
  readonly status: GroupStatus;
  /** Undefined when the group's last deployment is another one (this one's record is gone). */
  readonly deployment?: Deployment;
}

interface FollowOptions {
  readonly group: string;
  readonly deploymentId: string;
  readonly intervalMs: number;
  readonly sleep: (ms: number) => Promise<void>;
  /** Milliseconds since the epoch: progress lines say how long the deployment has been followed. */
  readonly now: () => number;
  /** Receives the progress lines; undefined prints none (--json). */
  readonly progress?: (line: string) => void;
}

/** Polls until `deploymentId` is no longer the group's deployment in flight. */
export async function follow(invoke: Invoke, options: FollowOptions): Promise<Followed> {
  const started = options.now();
  const shown = new Map<string, string>();
  const show = (key: string, line: string) => {
    if (shown.get(key) === line) return;
    shown.set(key, line);
    const seconds = ((options.now() - started) / 1000).toFixed(1).padStart(5);
    options.progress?.(`[${seconds}s] ${line}`);
  };
  for (;;) {
    const status = await invoke({ action: 'status', group: options.group });
    const running = status.deployment?.id === options.deploymentId ? status.deployment : undefined;
    if (running === undefined) {
      const ended = status.lastDeployment?.id === options.deploymentId ? status.lastDeployment : undefined;
      return ended === undefined ? { status } : { status, deployment: ended };
    }
    if (status.instances.length > COMPACT_ABOVE_INSTANCES) {
      show('counter', counterLine(running, status.instances));
    } else {
      show('phase', `${running.id} ${running.phase}${running.canary ? ` (canary ${running.canary})` : ''}`);
      for (const instance of status.instances) show(instance.instanceId, instanceLine(instance));
    }
    // A Standby batch held by MinSize or MaxSize: the operator can act on the reason (and sees it go).
    const waiting = waitingLine(running);
    if (waiting !== undefined) show('waiting', waiting);
    else if (shown.has('waiting')) show('waiting', `${running.id} no longer waits on the group's sizes`);
    await options.sleep(options.intervalMs);
  }
}
