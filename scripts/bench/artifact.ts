// Section 1: the Lambda artifact. The bundle built with exactly the infra's esbuild
// settings beside a naive bundle of the same handler (CommonJS, default resolution):
// size, and module-initialisation time in fresh processes, interleaved so both see the
// same machine load.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { ORCHESTRATOR_ENTRY, orchestratorBuildOptions } from '../../infra/bundling';
import { median, round } from './stats';

export interface ArtifactFigures {
  readonly runs: number;
  readonly selfdeploy: { bytes: number; initMsMedian: number };
  readonly naive: { bytes: number; initMsMedian: number };
  readonly sizeRatio: number;
  readonly initRatio: number;
}

// What a cold start pays for the module: load, parse and run it, reading SELFDEPLOY_CONFIG
// and building the clients. Printed by the child so process start-up is not counted.
const ESM_PROBE = 'const t=performance.now();await import(process.argv[1]);console.log(performance.now()-t)';
const CJS_PROBE = 'const t=performance.now();require(process.argv[1]);console.log(performance.now()-t)';

function initMs(probe: string, file: string, esm: boolean): number {
  const output = execFileSync(
    process.execPath,
    [...(esm ? ['--input-type=module'] : []), '-e', probe, esm ? `file://${file}` : file],
    {
      env: {
        PATH: process.env.PATH ?? '',
        AWS_REGION: 'us-east-1',
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        SELFDEPLOY_CONFIG: JSON.stringify({
          documentName: 'SelfDeploy',
          waitQueueUrl: 'https://sqs.us-east-1.amazonaws.com/123456789012/selfdeploy-events',
          groups: { web: { lifecycleHookName: 'launch' } },
        }),
      },
      encoding: 'utf8',
    },
  );
  return Number.parseFloat(output.trim());
}

export async function measureArtifact(runs: number): Promise<ArtifactFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'selfdeploy-bench-artifact-'));
  try {
    const ours = join(dir, 'selfdeploy', 'index.mjs');
    const naive = join(dir, 'naive', 'index.cjs');
    await build(orchestratorBuildOptions(ours));
    await build({
      entryPoints: [ORCHESTRATOR_ENTRY],
      outfile: naive,
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node22',
      logLevel: 'warning',
    });
    const oursMs: number[] = [];
    const naiveMs: number[] = [];
    for (let i = 0; i < runs; i++) {
      oursMs.push(initMs(ESM_PROBE, ours, true));
      naiveMs.push(initMs(CJS_PROBE, naive, false));
    }
    const selfdeploy = { bytes: statSync(ours).size, initMsMedian: round(median(oursMs)) };
    const baseline = { bytes: statSync(naive).size, initMsMedian: round(median(naiveMs)) };
    return {
      runs,
      selfdeploy,
      naive: baseline,
      sizeRatio: round(selfdeploy.bytes / baseline.bytes),
      initRatio: round(selfdeploy.initMsMedian / baseline.initMsMedian),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
