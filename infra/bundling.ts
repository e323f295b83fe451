import * as path from 'node:path';
import { aws_lambda as lambda, aws_lambda_nodejs as nodejs } from 'aws-cdk-lib';
import type { BuildOptions } from 'esbuild';

/** The repository root: where package-lock.json lives, NodejsFunction's project root. */
export const PROJECT_ROOT = path.resolve(__dirname, '..');

/** The orchestrator's source entry point. */
export const ORCHESTRATOR_ENTRY = path.join(PROJECT_ROOT, 'functions', 'orchestrator', 'handler.ts');

/** The Lambda runtime the bundle targets. */
export const ORCHESTRATOR_RUNTIME = lambda.Runtime.NODEJS_22_X;

/** Graviton: cheaper per millisecond, and nothing in the bundle is native code. */
export const ORCHESTRATOR_ARCHITECTURE = lambda.Architecture.ARM_64;

/** The one description of how the orchestrator is built; both views below derive from it. */
const SETTINGS = {
  target: 'node22',
  // ESM with module main fields lets esbuild take the SDK's ES builds, which it tree-shakes
  // far better than the CommonJS ones.
  mainFields: ['module', 'main'],
  minify: true,
  // Names are not kept: keeping them costs a name-setting call per function and class at every
  // cold start. Errors state their names as literals (functions/shared/errors.ts; the SDK's
  // exceptions do too), and a test checks the bundle still reports them by name. The one
  // dependency that compares a class name, Powertools' BatchProcessor, does so only in
  // processSync, which the orchestrator does not call (it awaits processPartialResponse).
  keepNames: false,
  // No createRequire banner: no dependency calls require() in the ESM bundle (a test
  // imports the built bundle in a fresh Node process and would fail if one started to).
  // Everything is bundled, the AWS SDK too: the function runs the client versions the
  // tests ran, not whatever the runtime happens to ship.
  external: [] as string[],
  // Code a Lambda never runs, replaced so that cold starts do not parse it (paths relative to
  // PROJECT_ROOT, where both builds below run). Lambda gives the function its credentials in
  // environment variables: the SDK's default chain (SSO, INI files, credential_process, web
  // identity, ECS, instance metadata, and the STS and SSO clients they bring) becomes the
  // environment's provider alone. Event streams: no operation the orchestrator calls has one.
  alias: {
    '@aws-sdk/credential-provider-node': './functions/shared/env-credentials.ts',
    '@smithy/core/event-streams': './functions/shared/no-event-streams.ts',
  },
} as const;

/** NodejsFunction's `bundling` for the orchestrator. */
export const ORCHESTRATOR_BUNDLING: nodejs.BundlingOptions = {
  format: nodejs.OutputFormat.ESM,
  target: SETTINGS.target,
  mainFields: [...SETTINGS.mainFields],
  minify: SETTINGS.minify,
  keepNames: SETTINGS.keepNames,
  externalModules: [...SETTINGS.external],
  esbuildArgs: { '--alias': Object.entries(SETTINGS.alias).map(([from, to]) => `${from}=${to}`) },
  sourceMap: false,
};

/** The same build through esbuild's API, e.g. for benchmarks: the output equals the deployed bundle. */
export function orchestratorBuildOptions(outfile: string): BuildOptions {
  return {
    entryPoints: [ORCHESTRATOR_ENTRY],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: SETTINGS.target,
    mainFields: [...SETTINGS.mainFields],
    minify: SETTINGS.minify,
    keepNames: SETTINGS.keepNames,
    external: [...SETTINGS.external],
    alias: { ...SETTINGS.alias },
    absWorkingDir: PROJECT_ROOT,
    logLevel: 'warning',
  };
}

/**
 * NodejsFunction silently falls back to bundling in Docker when it cannot find esbuild;
 * selfdeploy always bundles locally, so say what is missing instead.
 */
export function assertLocalEsbuild(): void {
  try {
    require.resolve('esbuild');
  } catch (error) {
    throw new Error(
      'esbuild is not installed: run `npm ci` (selfdeploy bundles its Lambda locally, never in Docker)',
      {
        cause: error,
      },
    );
  }
}
