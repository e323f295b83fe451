import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
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
const bundleText = () => readFileSync(deployedBundle, 'utf8');

const lambdaEnv = {
  SELFDEPLOY_CONFIG: JSON.stringify({ ...selfDeploy.config, waitQueueUrl: SAMPLE_QUEUE_URL }),
  AWS_REGION: 'us-west-2',
  AWS_ACCESS_KEY_ID: 'test',
  AWS_SECRET_ACCESS_KEY: 'test',
  // Any AWS call goes to a closed local port and fails, unless a test names its own endpoint.
  AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
};

/**
 * Imports the deployed bundle in a fresh Node.js process with only `env` (and PATH), calls the
 * handler with `event` as Lambda would, and returns its outcome: `RESULT <json>` or
 * `ERROR <name>`, an error at import (a cold start that fails) included. Log lines are dropped.
 */
function invokeBundle(event: unknown, env: Record<string, string>): Promise<string> {
  const script = `
    try {
      const { handler } = await import(${JSON.stringify(pathToFileURL(deployedBundle).href)});
      const context = { getRemainingTimeInMillis: () => 60000, functionName: 'selfdeploy', awsRequestId: 'test' };
      const result = await handler(${JSON.stringify(event)}, context);
      process.stdout.write('\\nRESULT ' + JSON.stringify(result));
    } catch (error) {
      process.stdout.write('\\nERROR ' + error.name);
    }`;
  // Asynchronous, so that a server in this process can answer the bundle's calls.
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', script],
      { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' },
      (error, stdout) => (error ? reject(error) : resolve(stdout.split('\n').at(-1) ?? '')),
    );
  });
}

describe('the orchestrator bundle', () => {
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));

  it("is exactly what esbuild's API builds from the exported settings", async () => {
    const outfile = path.join(outdir, 'api', 'index.mjs');
    await build(orchestratorBuildOptions(outfile));

    expect(readFileSync(outfile).equals(readFileSync(deployedBundle))).toBe(true);
  });

  // About 400 KB without EC2's SDK, which its schema keeps at some 550 KB however few of its
  // calls are used (the deploy tags); `npm run bench` measures what that costs at module init.
  it('stays small: ESM with module main fields, minified', () => {
    expect(readFileSync(deployedBundle).length).toBeLessThan(1024 * 1024);
  });

  it("leaves out every credential provider but the environment's", () => {
    // A string each provider of the SDK's default chain carries (minification keeps strings).
    const markers: Record<string, string> = {
      sso: 'sso_start_url',
      'shared config files': 'source_profile',
      credential_process: 'credential_process',
      'web identity': 'AWS_WEB_IDENTITY_TOKEN_FILE',
      container: 'AWS_CONTAINER_CREDENTIALS_FULL_URI',
      'instance metadata': '/latest/meta-data/iam/security-credentials',
      'console login': 'login_session',
    };
    const text = bundleText();

    expect(Object.keys(markers).filter((provider) => text.includes(markers[provider] ?? ''))).toEqual([]);
  });

  it('leaves out event-stream support, which no operation it calls has', () => {
    // The header every event-stream message carries (compared as a boolean: a failure would
    // otherwise print the whole bundle).
    expect(bundleText().includes(':message-type')).toBe(false);
  });

  it('starts in a fresh Node.js process and handles an event', async () => {
    // A test notification needs no AWS call.
    expect(await invokeBundle(fixtureEvent('test-notification'), lambdaEnv)).toMatch(/^RESULT /);
  });

  it("signs its AWS calls with Lambda's credentials from the environment, session token included", async () => {
    const requests: IncomingHttpHeaders[] = [];
    const server = createServer((request, response) => {
      requests.push(request.headers);
      request.resume();
      response
        .writeHead(400, { 'content-type': 'application/x-amz-json-1.1' })
        .end(JSON.stringify({ __type: 'AccessDeniedException', message: 'not in this test' }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const launch = fixtureEvent('launch');
      const event = {
        ...launch,
        detail: {
          ...(launch.detail as object),
          LifecycleHookName: selfDeploy.config.groups.web?.lifecycleHookName,
        },
      };
      const output = await invokeBundle(event, {
        ...lambdaEnv,
        AWS_ENDPOINT_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        AWS_ACCESS_KEY_ID: 'ASIAROLEFROMLAMBDA01',
        AWS_SECRET_ACCESS_KEY: 'secret-from-lambda',
        AWS_SESSION_TOKEN: 'session-token-from-lambda',
      });

      // The SDK's own exception, still named after the error code in the minified bundle.
      expect(output).toBe('ERROR AccessDeniedException');
      expect(requests.length).toBeGreaterThan(0);
      for (const headers of requests) {
        expect(headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=ASIAROLEFROMLAMBDA01\//);
        expect(headers['x-amz-security-token']).toBe('session-token-from-lambda');
      }
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('fails a cold start with a bad configuration by its own error name, minified as it is', async () => {
    expect(
      await invokeBundle(fixtureEvent('test-notification'), { ...lambdaEnv, SELFDEPLOY_CONFIG: '{}' }),
    ).toBe('ERROR ConfigError');
  });
});
