import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { App, Stack } from 'aws-cdk-lib';
import { build } from 'esbuild';
import { orchestratorBuildOptions } from '../../infra/bundling';
import { SelfDeploy } from '../../infra/self-deploy';
import { fixtureEvent, SAMPLE_QUEUE_URL } from './helpers';

// The one place the orchestrator is bundled for real, by NodejsFunction with local esbuild.
const outdir = mkdtempSync(path.join(tmpdir(), 'selfdeploy-bundle-'));
const app = new App({ outdir, context: { 'aws:cdk:enable-asset-metadata': true } });
const stack = new Stack(app, 'Bundled');
const selfDeploy = new SelfDeploy(stack, 'SelfDeploy', { groups: [{ autoScalingGroup: 'web' }] });
const assembly = app.synth();
const functionResource = Object.values(
  assembly.getStackByName('Bundled').template.Resources as Record<
    string,
    { Type: string; Metadata?: Record<string, string> }
  >,
).find((resource) => resource.Type === 'AWS::Lambda::Function');
const deployedBundle = path.join(
  outdir,
  functionResource?.Metadata?.['aws:asset:path'] ?? 'missing',
  'index.mjs',
);

describe('the orchestrator bundle', () => {
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));

  it("is exactly what esbuild's API builds from the exported settings", async () => {
    const outfile = path.join(outdir, 'api', 'index.mjs');
    await build(orchestratorBuildOptions(outfile));

    expect(readFileSync(outfile).equals(readFileSync(deployedBundle))).toBe(true);
  });

  it('stays small: ESM with module main fields, minified', () => {
    expect(readFileSync(deployedBundle).length).toBeLessThan(800 * 1024);
  });

  it('starts in a fresh Node.js process and handles an event', () => {
    // Any AWS call would go to a closed local port and fail: this event must need none.
    const script = `
      const { handler } = await import(${JSON.stringify(pathToFileURL(deployedBundle).href)});
      const context = { getRemainingTimeInMillis: () => 60000, functionName: 'selfdeploy', awsRequestId: 'test' };
      const result = await handler(${JSON.stringify(fixtureEvent('test-notification'))}, context);
      process.stdout.write('RESULT ' + JSON.stringify(result));`;
    const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      env: {
        PATH: process.env.PATH,
        SELFDEPLOY_CONFIG: JSON.stringify({ ...selfDeploy.config, waitQueueUrl: SAMPLE_QUEUE_URL }),
        AWS_REGION: 'us-west-2',
        AWS_ACCESS_KEY_ID: 'test',
        AWS_SECRET_ACCESS_KEY: 'test',
        AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
      },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });

    expect(output).toMatch(/RESULT /);
  });
});
