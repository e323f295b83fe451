// Section 3: what one bootstrap costs the orchestrator as deploys get longer — selfdeploy
// (completes on the SSM status event) beside a polling orchestrator (waits in the function
// with waitUntilCommandExecuted), each on its own control plane with the same settings.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchLifecyclePattern } from '../../functions/shared/event-patterns';
import { buildSelfDeployDocument } from '../../infra/document';
import { standInAgent } from '../local/agents';
import type { AutoScaling } from '../local/control-plane/auto-scaling';
import { ControlPlane } from '../local/control-plane/control-plane';
import { LocalLambda } from '../local/lambda';
import {
  APP_PATH,
  DEPLOY_PATH,
  DOCUMENT_NAME,
  GROUP_NAME,
  HOOK_NAME,
  LocalRun,
  STAND_IN_APP_USER,
} from '../local/local-run';
import { isBudgeted, withRelease } from './burst';
import type { BaselineResult } from './polling-orchestrator';
import { round } from './stats';

export interface CostSettings {
  /** Simulated seconds per real second for the control plane, the deploys and the baseline's waiter. */
  readonly timeScale: number;
  /** Instances launched at once per run. */
  readonly instances: number;
}

export interface OrchestratorCost {
  /** Lambda duration per bootstrap in simulated (AWS) milliseconds: what would be billed. */
  readonly lambdaMsPerBootstrap: number;
  readonly invocationsPerBootstrap: number;
  /** SSM and Auto Scaling calls per bootstrap. */
  readonly callsPerBootstrap: number;
  /** The function's own SQS calls per bootstrap (re-queued agent waits). */
  readonly sqsCallsPerBootstrap: number;
  /** Lifecycle actions not completed with CONTINUE by the orchestrator. */
  readonly notInService: number;
}

export interface CostFigures {
  readonly deploySeconds: number;
  readonly selfdeploy: OrchestratorCost;
  readonly polling: OrchestratorCost;
  /** Polling orchestrator's Lambda time over selfdeploy's. */
  readonly lambdaRatio: number;
}

/** The hook waits long enough for the longest deploy. */
const HEARTBEAT_TIMEOUT_SECONDS = 3600;
/** Lambda's longest timeout: the polling orchestrator cannot wait for a deploy beyond it. */
const LAMBDA_MAX_TIMEOUT_SECONDS = 900;
const BASELINE_MODULE = join(__dirname, 'polling-orchestrator.ts');

const sum = (values: readonly number[]) => values.reduce((total, value) => total + value, 0);

/** Resolves once `count` launched instances have had their lifecycle action completed. */
function completions(autoScaling: AutoScaling, count: number, timeoutMs: number): Promise<string[]> {
  const continued: string[] = [];
  let ended = 0;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${count - ended} lifecycle action(s) still open after ${timeoutMs / 1000}s`)),
      timeoutMs,
    );
    autoScaling.onChange((change) => {
      if (change.kind !== 'completed') return;
      ended += 1;
      if (change.reason === 'api' && change.result === 'CONTINUE') continued.push(change.instance.id);
      if (ended === count) {
        clearTimeout(timer);
        resolve(continued);
      }
    });
  });
}

async function selfdeployCost(deploySeconds: number, settings: CostSettings): Promise<OrchestratorCost> {
  const { timeScale, instances } = settings;
  // Agents are online at launch: the cost of waiting for them is section 2's subject.
  const run = await LocalRun.start({
    deploy: { durationMs: (deploySeconds * 1000) / timeScale },
    timeScale,
    agentDelaySeconds: 0,
    maxSize: instances,
    hook: { heartbeatTimeout: HEARTBEAT_TIMEOUT_SECONDS },
  });
  try {
    const done = completions(run.plane.autoScaling, instances, runTimeoutMs(deploySeconds, timeScale));
    withRelease(run);
    run.scaleTo(instances);
    const continued = await done;
    // The completing invocations finish just after their CompleteLifecycleAction; their time counts.
    await run.idle(60_000);
    const invocations = run.orchestrator.lambda.invocations;
    // selfdeploy never sleeps here (agents are online, nothing is throttled): its real
    // invocation time is all work, the same on AWS.
    return {
      lambdaMsPerBootstrap: round(sum(invocations.map((i) => i.ms)) / instances, 1),
      invocationsPerBootstrap: round(invocations.length / instances),
      callsPerBootstrap: round(run.plane.calls.filter(isBudgeted).length / instances),
      sqsCallsPerBootstrap: round(
        run.plane.calls.filter((call) => call.service === 'sqs').length / instances,
      ),
      notInService: instances - continued.length,
    };
  } finally {
    await run.stop();
  }
}

async function pollingCost(deploySeconds: number, settings: CostSettings): Promise<OrchestratorCost> {
  const { timeScale, instances } = settings;
  const dir = mkdtempSync(join(tmpdir(), 'selfdeploy-bench-polling-'));
  const plane = await ControlPlane.start({
    timeScale,
    agentDelaySeconds: 0,
    agent: standInAgent({ durationMs: (deploySeconds * 1000) / timeScale }),
  });
  let lambda: LocalLambda | undefined;
  try {
    plane.ssm.putDocument(DOCUMENT_NAME, JSON.stringify(buildSelfDeployDocument()));
    lambda = await LocalLambda.start({
      modulePath: BASELINE_MODULE,
      env: {
        ...plane.env(),
        BASELINE_CONFIG: JSON.stringify({
          documentName: DOCUMENT_NAME,
          timeScale,
          parameters: {
            appUser: [STAND_IN_APP_USER],
            appPath: [APP_PATH],
            deployPath: [DEPLOY_PATH],
          },
        }),
      },
      timeoutSeconds: LAMBDA_MAX_TIMEOUT_SECONDS / timeScale,
      logFile: join(dir, 'polling-orchestrator.log'),
    });
    const target = lambda;
    plane.bus.addRule('LaunchRule', launchLifecyclePattern([GROUP_NAME]), (event) => target.invoke(event));
    plane.autoScaling.createGroup({
      name: GROUP_NAME,
      maxSize: instances,
      hook: { name: HOOK_NAME, heartbeatTimeout: HEARTBEAT_TIMEOUT_SECONDS },
    });
    const done = completions(plane.autoScaling, instances, runTimeoutMs(deploySeconds, timeScale));
    plane.autoScaling.setDesiredCapacity(GROUP_NAME, instances);
    const continued = await done;
    await plane.bus.idle();
    // Real time spent sleeping in the waiter stands for timeScale times as much on AWS.
    const billed = lambda.invocations.map((invocation) => {
      const result = invocation.result as BaselineResult | undefined;
      const sleptMs = result ? result.totalMs - result.apiMs : 0;
      return invocation.ms + sleptMs * (timeScale - 1);
    });
    return {
      lambdaMsPerBootstrap: round(sum(billed) / instances, 1),
      invocationsPerBootstrap: round(lambda.invocations.length / instances),
      callsPerBootstrap: round(plane.calls.length / instances),
      sqsCallsPerBootstrap: 0,
      notInService: instances - continued.length,
    };
  } finally {
    await lambda?.stop();
    await plane.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Real milliseconds a run may take: the deploy, scaled, plus generous room for everything else. */
function runTimeoutMs(deploySeconds: number, timeScale: number): number {
  return ((deploySeconds * 2) / timeScale + 60) * 1000;
}

/** Both orchestrators for one simulated deploy length, selfdeploy first. */
export async function measureCost(deploySeconds: number, settings: CostSettings): Promise<CostFigures> {
  const selfdeploy = await selfdeployCost(deploySeconds, settings);
  const polling = await pollingCost(deploySeconds, settings);
  return {
    deploySeconds,
    selfdeploy,
    polling,
    lambdaRatio: round(polling.lambdaMsPerBootstrap / selfdeploy.lambdaMsPerBootstrap, 1),
  };
}
