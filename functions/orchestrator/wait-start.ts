import { type Activity, DescribeScalingActivitiesCommand } from '@aws-sdk/client-auto-scaling';
import type { Deps } from './deps';

/** DescribeScalingActivities' largest page. */
const ACTIVITIES_PER_PAGE = 100;
/** Pages of a group's activities read at most per question, so a busy group costs a bounded number of calls. */
export const MAX_ACTIVITY_PAGES = 20;
/** Status codes of an activity that has ended; any other is still in progress (e.g. MidLifecycleAction). */
const ENDED: ReadonlySet<string> = new Set(['Successful', 'Failed', 'Cancelled']);

/**
 * Where each instance's current lifecycle wait began, as far as a scan of its group's scaling
 * activities saw. A wait begins with a launch activity (into service, into the warm pool, or
 * from the warm pool), so a command sent before the newest one belongs to an earlier wait.
 * Auto Scaling's own timestamps are used because an event's `time` may be a placeholder.
 */
export interface LaunchScan {
  /** StartTime of the newest launch activity of each wanted instance that was seen. */
  readonly starts: ReadonlyMap<string, Date>;
  /** Every launch at or after this moment was seen; undefined when nothing was read. */
  readonly coveredSince: Date | undefined;
}

/** The instance a launch activity launched ("Launching a new EC2 instance…: i-…"); undefined for any other activity. */
function launchedInstance(activity: Pick<Activity, 'Description'>): string | undefined {
  return /^Launching .*: (i-[0-9a-f]{8,17})$/.exec(activity.Description ?? '')?.[1];
}

/**
 * Reads the group's scaling activities until every wanted instance's newest launch was seen,
 * an ended activity older than `back` was seen, the history ends, or MAX_ACTIVITY_PAGES pages
 * were read. Auto Scaling lists activities in progress first (a launch whose hook still waits is
 * one), then the ended ones, each newest first: so everything since an ended activity's
 * start has been seen once that activity has, but an old activity in progress proves nothing.
 */
export async function scanLaunches(
  deps: Deps,
  groupName: string,
  instanceIds: Iterable<string>,
  options: { readonly back?: Date } = {},
): Promise<LaunchScan> {
  const wanted = new Set(instanceIds);
  const starts = new Map<string, Date>();
  let coveredSince: Date | undefined;
  let nextToken: string | undefined;
  for (let page = 0; page < MAX_ACTIVITY_PAGES; page++) {
    const output = await deps.clients.autoScaling.send(
      new DescribeScalingActivitiesCommand({
        AutoScalingGroupName: groupName,
        MaxRecords: ACTIVITIES_PER_PAGE,
        ...(nextToken && { NextToken: nextToken }),
      }),
    );
    for (const activity of output.Activities ?? []) {
      const started = activity.StartTime;
      if (!started) continue;
      if (ENDED.has(activity.StatusCode ?? '') && (!coveredSince || started < coveredSince)) {
        coveredSince = started;
      }
      const instanceId = launchedInstance(activity);
      if (instanceId && wanted.has(instanceId) && !starts.has(instanceId)) starts.set(instanceId, started);
    }
    nextToken = output.NextToken;
    if (!nextToken) return { starts, coveredSince: new Date(0) };
    if (starts.size === wanted.size) break;
    if (options.back && coveredSince && coveredSince < options.back) break;
  }
  return { starts, coveredSince };
}

/**
 * Whether a command requested at `requestedAt` may speak for the instance's current wait: no
 * launch of the instance started after it. Unknown (no time, or activities not read back far
 * enough) counts as no.
 */
export function sentDuringCurrentWait(
  scan: LaunchScan,
  instanceId: string,
  requestedAt: Date | undefined,
): boolean {
  if (!requestedAt) return false;
  const start = scan.starts.get(instanceId);
  if (start) return requestedAt >= start;
  return scan.coveredSince !== undefined && scan.coveredSince <= requestedAt;
}
