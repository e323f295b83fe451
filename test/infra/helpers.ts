import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { App, CfnElement, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';

/**
 * An app that skips asset bundling: template tests do not need the function's code, and
 * esbuild would add seconds per synth. bundling.test.ts checks the real bundle.
 */
export function testApp(context: Record<string, unknown> = {}): App {
  // Each app writes its cloud assembly into this file's own temporary directory, removed
  // when the file's tests end, instead of leaving a cdk.out* behind in /tmp per app.
  return new App({
    outdir: mkdtempSync(path.join(assemblies(), 'app-')),
    context: { 'aws:cdk:bundling-stacks': [], ...context },
  });
}

let assemblyRoot: string | undefined;
// Registered when a test file imports this module, so it runs after that file's tests.
afterAll(() => {
  if (assemblyRoot) rmSync(assemblyRoot, { recursive: true, force: true });
  assemblyRoot = undefined;
});
function assemblies(): string {
  assemblyRoot ??= mkdtempSync(path.join(tmpdir(), 'selfdeploy-infra-test-'));
  return assemblyRoot;
}

/** A stack in a fresh test app. */
export function testStack(id = 'Test'): Stack {
  return new Stack(testApp(), id);
}

/** Synthesizes once and returns the template. */
export function templateOf(stack: Stack): Template {
  return Template.fromStack(stack);
}

/** Every AwsSolutions finding not acknowledged next to its resource, as `rule at path`. */
export function nagFindings(scope: IConstruct): string[] {
  const report = new AwsSolutionsChecks(scope).validateScope(scope);
  return report.violations.flatMap((violation) =>
    violation.violatingResources.map((resource) => `${violation.ruleName} at ${resource.constructPath}`),
  );
}

/** A sample event from test/fixtures/events. */
export function fixtureEvent(name: string): Record<string, unknown> {
  return JSON.parse(
    readFileSync(path.join(__dirname, '..', 'fixtures', 'events', `${name}.json`), 'utf8'),
  ) as Record<string, unknown>;
}

/** The resources of one type, by logical id. */
export function resourcesOf(
  template: Template,
  type: string,
): Record<string, { Properties: Record<string, unknown> }> {
  return template.findResources(type) as Record<string, { Properties: Record<string, unknown> }>;
}

/** The one resource of a type (fails when there is not exactly one). */
export function onlyResource(template: Template, type: string): Record<string, unknown> {
  const resources = Object.values(resourcesOf(template, type));
  if (resources.length !== 1) throw new Error(`expected one ${type}, found ${resources.length}`);
  return (resources[0] as { Properties: Record<string, unknown> }).Properties;
}

/** An IAM policy statement as synthesized. */
export interface Statement {
  readonly Sid?: string;
  readonly Effect: string;
  readonly Action: string | string[];
  readonly Resource?: unknown;
  readonly Principal?: unknown;
  readonly Condition?: Record<string, Record<string, unknown>>;
}

/** The statements of every inline policy whose logical id starts with `prefix`. */
export function policyStatements(template: Template, prefix: string): Statement[] {
  return Object.entries(resourcesOf(template, 'AWS::IAM::Policy'))
    .filter(([id]) => id.startsWith(prefix))
    .flatMap(([, policy]) => (policy.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}

/** A statement's actions as a list. */
export function actionsOf(statement: Statement): string[] {
  return Array.isArray(statement.Action) ? statement.Action : [statement.Action];
}

/** A statement's resources as a list. */
export function resourcesOfStatement(statement: Statement): unknown[] {
  return Array.isArray(statement.Resource) ? statement.Resource : [statement.Resource];
}

/** Snapshot serializer: asset hashes change with every code change and say nothing about the infrastructure. */
export const assetHashSerializer: jest.SnapshotSerializerPlugin = {
  test: (value) => typeof value === 'string' && /[0-9a-f]{64}/.test(value),
  serialize: (value: string, config, indentation, depth, refs, printer) =>
    printer(value.replace(/[0-9a-f]{64}/g, '[ASSET HASH]'), config, indentation, depth, refs),
};

/** The logical id of a construct's CloudFormation resource in `stack`. */
export function logicalId(stack: Stack, construct: IConstruct): string {
  const resource = construct.node.defaultChild;
  if (!(resource instanceof CfnElement))
    throw new Error(`${construct.node.path} has no CloudFormation resource`);
  return stack.getLogicalId(resource);
}

/** A URL standing in for the event queue's, which CloudFormation fills in at deployment. */
export const SAMPLE_QUEUE_URL = 'https://sqs.us-east-1.amazonaws.com/123456789012/selfdeploy-events';

/**
 * The function's SELFDEPLOY_CONFIG as CloudFormation will produce it: a plain string, or an
 * Fn::Join whose references `resolve` names (the event queue's URL, a group's name).
 */
export function deployedConfig(fn: Record<string, unknown>, resolve: (reference: unknown) => string): string {
  const value = (fn.Environment as { Variables: { SELFDEPLOY_CONFIG: unknown } }).Variables.SELFDEPLOY_CONFIG;
  if (typeof value === 'string') return value;
  const [separator, parts] = (value as { 'Fn::Join': [string, unknown[]] })['Fn::Join'];
  return parts.map((part) => (typeof part === 'string' ? part : resolve(part))).join(separator);
}
