import { type ChildProcess, execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { FIDELITY } from '../../scripts/local/fidelity';
import { startLocal } from './support';

// Clients nobody here wrote — the AWS CLI and boto3 — against the control plane an operator
// gets from `npm start -- --keep`, through --endpoint-url as their older releases need.
jest.setTimeout(90_000);

const run = promisify(execFile);
// Debian's AWS CLI v2 and boto3, as scripts/setup.sh installs them, whatever else is first on PATH.
const AWS_CLI = '/usr/bin/aws';
const PYTHON = '/usr/bin/python3';

interface Kept {
  readonly child: ChildProcess;
  readonly endpoint: string;
  readonly env: Readonly<Record<string, string>>;
  readonly appUser: string;
  readonly runDir: string;
  readonly exit: Promise<number | null>;
}

let kept: Kept;
let home: string;
let instanceIds: string[];

/** Starts `npm start -- --keep --instances 2` and reads what it prints for AWS clients. */
async function startKept(): Promise<Kept> {
  const { child, output: read, exit } = startLocal(['--keep', '--instances', '2']);
  const deadline = Date.now() + 60_000;
  while (!read().includes('waiting for Ctrl-C')) {
    if (Date.now() > deadline || child.exitCode !== null)
      throw new Error(`npm start --keep did not keep:\n${read()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const output = read();
  const env = Object.fromEntries(
    [...output.matchAll(/^ {2}export (\w+)=(\S*)$/gm)].map((m) => [
      m[1],
      (m[2] ?? '').replace(/^(['"])(.*)\1$/, '$2'),
    ]),
  );
  return {
    child,
    exit,
    env,
    endpoint: /keeps running at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1] ?? '',
    appUser: /application user (\S+);/.exec(output)?.[1] ?? '',
    runDir: /run directory (\S+)/.exec(output)?.[1] ?? '',
  };
}

/** The clients' environment: only what --keep printed, no config files, no pager. */
function clientEnv(): NodeJS.ProcessEnv {
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => name === 'PATH' || name.startsWith('PYENV')),
  );
  return { ...inherited, HOME: home, AWS_PAGER: '', ...kept.env };
}

interface CliResult {
  readonly json: unknown;
  /** The error code the CLI reported, if the call failed. */
  readonly error?: string;
  readonly stderr: string;
}

async function aws(...args: string[]): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(
      AWS_CLI,
      ['--endpoint-url', kept.endpoint, '--output', 'json', ...args],
      {
        env: clientEnv(),
      },
    );
    return { json: stdout.trim() === '' ? undefined : JSON.parse(stdout), stderr };
  } catch (error) {
    const stderr = String((error as { stderr?: string }).stderr ?? '');
    const code = /An error occurred \((\w+)\)/.exec(stderr)?.[1];
    if (code === undefined) throw new Error(`aws ${args.join(' ')} failed: ${stderr}`);
    return { json: undefined, error: code, stderr };
  }
}

/** One boto3 call; `{ $ref: [step, ...path] }` in a parameter reads an earlier step's result. */
interface Step {
  readonly service: 'autoscaling' | 'ssm' | 'ec2' | 'lambda';
  /** The boto3 method, e.g. `describe_auto_scaling_groups`. */
  readonly op: string;
  readonly params?: Readonly<Record<string, unknown>>;
  /** false: let the call through without botocore's client-side checks, as a raw request would. */
  readonly validate?: boolean;
  /** How the request is signed: with the run's credentials (default), or wrongly on purpose. */
  readonly auth?: 'unsigned' | 'unknown-key' | 'wrong-secret' | 'incomplete';
}

interface StepResult {
  readonly ok: boolean;
  readonly result?: Record<string, unknown>;
  readonly code?: string;
  readonly message?: string;
  readonly status?: number;
}

const BOTO3_RUNNER = `
import json, os, sys, boto3, botocore
from botocore.config import Config
from botocore.exceptions import ClientError
endpoint, steps, clients, out = sys.argv[1], json.load(sys.stdin), {}, []
def resolve(value):
    if isinstance(value, dict) and '$ref' in value:
        found = out[value['$ref'][0]]['result']
        for key in value['$ref'][1:]:
            found = found[key]
        return found
    if isinstance(value, dict):
        return {k: resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v) for v in value]
    return value
def cut_signature(request, **kwargs):
    signed = request.headers['Authorization']
    signed = signed.decode() if isinstance(signed, bytes) else signed
    request.headers['Authorization'] = signed.split(', Signature=')[0]
def client(service, validate, auth):
    options = {'parameter_validation': validate, 'retries': {'max_attempts': 1}}
    keys = {}
    if auth == 'unsigned':
        options['signature_version'] = botocore.UNSIGNED
    elif auth == 'unknown-key':
        keys = {'aws_access_key_id': 'AKIAUNKNOWNUNKNOWN00', 'aws_secret_access_key': 'x' * 40}
    elif auth == 'wrong-secret':
        keys = {'aws_access_key_id': os.environ['AWS_ACCESS_KEY_ID'], 'aws_secret_access_key': 'x' * 40}
    made = boto3.client(service, endpoint_url=endpoint, config=Config(**options), **keys)
    if auth == 'incomplete':
        made.meta.events.register('before-send', cut_signature)
    return made
for step in steps:
    key = (step['service'], step.get('validate', True), step.get('auth'))
    if key not in clients:
        clients[key] = client(*key)
    try:
        params = resolve(step.get('params', {}))
    except KeyError:
        out.append({'ok': False, 'code': 'EarlierStepFailed', 'message': '', 'status': 0})
        continue
    try:
        result = getattr(clients[key], step['op'])(**params)
        result.pop('ResponseMetadata', None)
        out.append({'ok': True, 'result': result})
    except ClientError as error:
        out.append({'ok': False, 'code': error.response['Error']['Code'],
            'message': error.response['Error'].get('Message', ''),
            'status': error.response['ResponseMetadata']['HTTPStatusCode']})
print(json.dumps(out, default=str))
`;

/** Runs the steps in order in one python3 process (boto3 takes about half a second to start). */
async function boto3(steps: readonly Step[]): Promise<StepResult[]> {
  const child = execFile(PYTHON, ['-c', BOTO3_RUNNER, kept.endpoint], {
    env: clientEnv(),
    maxBuffer: 16 * 1024 * 1024,
  });
  child.stdin?.end(JSON.stringify(steps));
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`boto3 steps failed (${code}): ${stderr}`);
  return JSON.parse(stdout) as StepResult[];
}

const UNKNOWN_ID = '11111111-2222-3333-4444-555555555555';
/** The function the kept run's control plane serves Invoke for. */
const FUNCTION = 'selfdeploy-orchestrator';
/** The fidelity table's Parameter Store row. */
const PARAMETERS = 'PutParameter / GetParameter / GetParametersByPath / DeleteParameter / DeleteParameters';
const NO_INSTANCE = 'i-0123456789abcdef0';
/** The fidelity table's document row. */
const DOCUMENTS =
  'CreateDocument / UpdateDocument / UpdateDocumentDefaultVersion / DescribeDocument / GetDocument';
/** A Command document whose description is `label`, so each label makes different content. */
const documentContent = (label: string) =>
  JSON.stringify({
    schemaVersion: '2.2',
    description: label,
    mainSteps: [{ action: 'aws:runShellScript', name: 'run', inputs: { runCommand: ['true'] } }],
  });
/** A group of its own for cases that change groups, so the operator's group stays as it was. */
const SPARE = 'conformance';

/** boto3's name for each service of the fidelity table that boto3 drives here. */
const CLIENTS = { 'Auto Scaling': 'autoscaling', SSM: 'ssm', EC2: 'ec2', Lambda: 'lambda' } as const;

interface ErrorCase {
  readonly steps: readonly Step[];
  readonly message?: RegExp;
  /** @default 400 */
  readonly status?: number;
}

/**
 * One case per signing error of a service's "request signing" row, each a wrongly signed
 * call, with the status that service answers it with.
 */
function signingCases(
  service: keyof typeof CLIENTS,
  call: Omit<Step, 'service' | 'auth'>,
  codes: Readonly<Record<string, { auth: NonNullable<Step['auth']>; status: number }>>,
): Record<string, ErrorCase> {
  const row = FIDELITY.find((entry) => entry.service === service && entry.operation === 'request signing');
  return Object.fromEntries(
    Object.entries(codes).map(([code, { auth, status }]) => [
      `${service} ${row?.operation} ${code}`,
      { steps: [{ service: CLIENTS[service], ...call, auth }], status },
    ]),
  );
}

function errorCases(): Record<string, ErrorCase> {
  const instance = instanceIds[0] as string;
  const asg = (op: string, params: Record<string, unknown>, validate = true): Step => ({
    service: 'autoscaling',
    op,
    params,
    validate,
  });
  const ssm = (op: string, params: Record<string, unknown>, validate = true): Step => ({
    service: 'ssm',
    op,
    params,
    validate,
  });
  const ec2 = (op: string, params: Record<string, unknown>, validate = true): Step => ({
    service: 'ec2',
    op,
    params,
    validate,
  });
  const lambda = (op: string, params: Record<string, unknown>, validate = true): Step => ({
    service: 'lambda',
    op,
    params,
    validate,
  });
  const hook = (name: string, heartbeat = 30) =>
    asg(
      'put_lifecycle_hook',
      {
        AutoScalingGroupName: SPARE,
        LifecycleHookName: name,
        LifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING',
        HeartbeatTimeout: heartbeat,
      },
      false,
    );
  const ids = <T>(count: number, make: (i: number) => T) => Array.from({ length: count }, (_, i) => make(i));
  return {
    'CreateAutoScalingGroup AlreadyExists': {
      steps: [asg('create_auto_scaling_group', { AutoScalingGroupName: 'web', MinSize: 0, MaxSize: 1 })],
      message: /^AutoScalingGroup by this name already exists - A group with the name web already exists$/,
    },
    'CreateAutoScalingGroup ValidationError': {
      steps: [
        asg('create_auto_scaling_group', {
          AutoScalingGroupName: 'too-many',
          MinSize: 0,
          MaxSize: 1,
          DesiredCapacity: 3,
        }),
      ],
      message: /^Desired capacity:3 must be between the specified min size:0 and max size:1$/,
    },
    'PutLifecycleHook ValidationError': { steps: [hook('too-short', 10)] },
    'PutLifecycleHook LimitExceeded': { steps: ids(51, (i) => `hook-${i + 1}`).map((name) => hook(name)) },
    'DescribeLifecycleHooks ValidationError': {
      steps: [asg('describe_lifecycle_hooks', { AutoScalingGroupName: 'no-such-group' })],
    },
    'SetDesiredCapacity ValidationError': {
      steps: [asg('set_desired_capacity', { AutoScalingGroupName: 'web', DesiredCapacity: 99 })],
      message: /^New SetDesiredCapacity value 99 is above max value 10 for the AutoScalingGroup\.$/,
    },
    'CompleteLifecycleAction / RecordLifecycleActionHeartbeat ValidationError': {
      steps: [
        asg('record_lifecycle_action_heartbeat', {
          AutoScalingGroupName: 'web',
          LifecycleHookName: 'selfdeploy-launch',
          LifecycleActionToken: UNKNOWN_ID,
        }),
      ],
      message: new RegExp(`^No active Lifecycle Action found with token ${UNKNOWN_ID}$`),
    },
    'DescribeAutoScalingGroups ValidationError': {
      steps: [asg('describe_auto_scaling_groups', { MaxRecords: 101 }, false)],
    },
    'DescribeAutoScalingInstances ValidationError': {
      steps: [
        asg(
          'describe_auto_scaling_instances',
          { InstanceIds: ids(51, (i) => `i-${String(i).padStart(17, '0')}`) },
          false,
        ),
      ],
    },
    'DescribeScalingActivities ValidationError': {
      steps: [asg('describe_scaling_activities', { ActivityIds: ids(51, () => UNKNOWN_ID) }, false)],
    },
    'DescribeAutoScalingGroups InvalidNextToken': {
      steps: [asg('describe_auto_scaling_groups', { NextToken: 'not-a-token' })],
      message: /^The NextToken value is not valid\.$/,
    },
    'DescribeAutoScalingInstances InvalidNextToken': {
      steps: [asg('describe_auto_scaling_instances', { NextToken: 'not-a-token' })],
    },
    'DescribeScalingActivities InvalidNextToken': {
      steps: [asg('describe_scaling_activities', { NextToken: 'not-a-token' })],
    },
    'PutWarmPool / DescribeWarmPool InvalidNextToken': {
      steps: [asg('describe_warm_pool', { AutoScalingGroupName: SPARE, NextToken: 'not-a-token' })],
    },
    'PutWarmPool / DescribeWarmPool ValidationError': {
      steps: [asg('put_warm_pool', { AutoScalingGroupName: SPARE, PoolState: 'Frozen' })],
    },
    'SendCommand InvalidInstanceId': {
      steps: [ssm('send_command', { InstanceIds: [NO_INSTANCE], DocumentName: 'SelfDeploy' })],
    },
    'SendCommand InvalidDocument': {
      steps: [ssm('send_command', { InstanceIds: [instance], DocumentName: 'NoSuchDocument' })],
    },
    'SendCommand InvalidDocumentVersion': {
      steps: [
        ssm('send_command', { InstanceIds: [instance], DocumentName: 'SelfDeploy', DocumentVersion: '999' }),
      ],
    },
    [`${DOCUMENTS} InvalidDocument`]: { steps: [ssm('describe_document', { Name: 'NoSuchDocument' })] },
    [`${DOCUMENTS} DocumentAlreadyExists`]: {
      steps: [ssm('create_document', { Name: 'SelfDeploy', Content: documentContent('taken') })],
    },
    [`${DOCUMENTS} InvalidDocumentVersion`]: {
      steps: [ssm('get_document', { Name: 'SelfDeploy', DocumentVersion: '999' })],
    },
    [`${DOCUMENTS} DuplicateDocumentContent`]: {
      steps: [
        ssm('create_document', { Name: 'ConformanceDuplicate', Content: documentContent('same') }),
        ssm('update_document', { Name: 'ConformanceDuplicate', Content: documentContent('same') }),
      ],
    },
    [`${DOCUMENTS} DocumentVersionLimitExceeded`]: {
      // Version 1, then 999 more: the 1001st is refused.
      steps: [
        ssm('create_document', { Name: 'ConformanceVersions', Content: documentContent('0') }),
        ...Array.from({ length: 1000 }, (_, n) =>
          ssm('update_document', { Name: 'ConformanceVersions', Content: documentContent(String(n + 1)) }),
        ),
      ],
    },
    [`${DOCUMENTS} InvalidDocumentContent`]: {
      steps: [ssm('create_document', { Name: 'ConformanceNotJson', Content: 'not json' })],
    },
    [`${DOCUMENTS} InvalidDocumentSchemaVersion`]: {
      steps: [ssm('create_document', { Name: 'ConformanceSchema', Content: '{"schemaVersion":"9.9"}' })],
    },
    [`${DOCUMENTS} InvalidDocumentOperation`]: {
      steps: [ssm('update_document', { Name: 'AWS-RunShellScript', Content: documentContent('mine') })],
    },
    [`${DOCUMENTS} ValidationException`]: {
      steps: [
        ssm('update_document_default_version', { Name: 'SelfDeploy', DocumentVersion: '$LATEST' }, false),
      ],
    },
    'SendCommand InvalidParameters': {
      steps: [
        ssm('send_command', {
          InstanceIds: [instance],
          DocumentName: 'SelfDeploy',
          Parameters: { nope: ['1'] },
        }),
      ],
    },
    ...signingCases(
      'Auto Scaling',
      { op: 'describe_auto_scaling_groups' },
      {
        MissingAuthenticationToken: { auth: 'unsigned', status: 403 },
        InvalidClientTokenId: { auth: 'unknown-key', status: 403 },
        SignatureDoesNotMatch: { auth: 'wrong-secret', status: 403 },
        IncompleteSignature: { auth: 'incomplete', status: 403 },
      },
    ),
    ...signingCases(
      'SSM',
      { op: 'describe_instance_information' },
      {
        MissingAuthenticationTokenException: { auth: 'unsigned', status: 400 },
        UnrecognizedClientException: { auth: 'unknown-key', status: 400 },
        InvalidSignatureException: { auth: 'wrong-secret', status: 400 },
        IncompleteSignatureException: { auth: 'incomplete', status: 400 },
      },
    ),
    ...signingCases(
      'EC2',
      { op: 'describe_tags' },
      {
        MissingAuthenticationToken: { auth: 'unsigned', status: 403 },
        AuthFailure: { auth: 'unknown-key', status: 401 },
        SignatureDoesNotMatch: { auth: 'wrong-secret', status: 403 },
        IncompleteSignature: { auth: 'incomplete', status: 400 },
      },
    ),
    ...signingCases(
      'Lambda',
      { op: 'invoke', params: { FunctionName: FUNCTION, Payload: '{"action":"reconcile"}' } },
      {
        MissingAuthenticationTokenException: { auth: 'unsigned', status: 403 },
        UnrecognizedClientException: { auth: 'unknown-key', status: 403 },
        InvalidSignatureException: { auth: 'wrong-secret', status: 403 },
        IncompleteSignatureException: { auth: 'incomplete', status: 403 },
      },
    ),
    'SSM documents: AWS-RunShellScript InvalidParameters': {
      steps: [
        ssm('send_command', {
          InstanceIds: [instance],
          DocumentName: 'AWS-RunShellScript',
          Parameters: { commands: ['true'], executionTimeout: ['0'] },
        }),
      ],
    },
    'SendCommand ValidationException': {
      steps: [
        ssm(
          'send_command',
          { InstanceIds: [instance], DocumentName: 'SelfDeploy', Comment: 'x'.repeat(101) },
          false,
        ),
      ],
    },
    'ListCommands / ListCommandInvocations / GetCommandInvocation InvalidCommandId': {
      steps: [ssm('list_commands', { CommandId: UNKNOWN_ID })],
    },
    'ListCommands / ListCommandInvocations / GetCommandInvocation InvocationDoesNotExist': {
      steps: [ssm('get_command_invocation', { CommandId: UNKNOWN_ID, InstanceId: instance })],
    },
    'ListCommands / ListCommandInvocations / GetCommandInvocation InvalidFilterKey': {
      steps: [ssm('list_commands', { Filters: [{ key: 'ExecutionStage', value: 'Executing' }] })],
    },
    'ListCommands / ListCommandInvocations / GetCommandInvocation InvalidNextToken': {
      steps: [ssm('list_commands', { NextToken: 'not-a-token' })],
    },
    'DescribeInstanceInformation InvalidInstanceInformationFilterValue': {
      steps: [ssm('describe_instance_information', { Filters: [{ Key: 'AgentVersion', Values: ['1'] }] })],
    },
    [`${PARAMETERS} ParameterAlreadyExists`]: {
      steps: [1, 2].map(() =>
        ssm('put_parameter', { Name: '/conformance/once', Value: 'v', Type: 'String' }),
      ),
    },
    [`${PARAMETERS} ParameterNotFound`]: {
      steps: [ssm('delete_parameter', { Name: '/conformance/none' })],
      // AWS answers ParameterNotFound with no message.
      message: /^$/,
    },
    [`${PARAMETERS} ValidationException`]: {
      steps: [ssm('get_parameters_by_path', { Path: '/conformance', MaxResults: 11 }, false)],
      message:
        /at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 10$/,
    },
    [`${PARAMETERS} HierarchyLevelLimitExceededException`]: {
      steps: [
        ssm('put_parameter', {
          Name: `/${ids(16, (i) => `level${i}`).join('/')}`,
          Value: 'v',
          Type: 'String',
        }),
      ],
    },
    'EnterStandby / ExitStandby ValidationError': {
      steps: [
        asg('enter_standby', {
          AutoScalingGroupName: SPARE,
          InstanceIds: [NO_INSTANCE],
          ShouldDecrementDesiredCapacity: true,
        }),
      ],
      message: new RegExp(`^The instance ${NO_INSTANCE} is not part of Auto Scaling group ${SPARE}\\.$`),
    },
    'CreateTags InvalidParameterValue': {
      steps: [ec2('create_tags', { Resources: [instance], Tags: [{ Key: 'aws:mine', Value: 'v' }] })],
      message:
        /^Value \( aws:mine \) for parameter key is invalid\. Tag keys starting with 'aws:' are reserved for internal use$/,
    },
    'CreateTags InvalidInstanceID.NotFound': {
      steps: [ec2('create_tags', { Resources: [NO_INSTANCE], Tags: [{ Key: 'k', Value: 'v' }] })],
      message: new RegExp(`^The instance ID '${NO_INSTANCE}' does not exist$`),
    },
    'CreateTags InvalidInstanceID.Malformed': {
      steps: [ec2('create_tags', { Resources: ['web-1'], Tags: [{ Key: 'k', Value: 'v' }] })],
    },
    'CreateTags MissingParameter': {
      steps: [ec2('create_tags', { Resources: [instance], Tags: [] }, false)],
    },
    'CreateTags TagLimitExceeded': {
      steps: [
        ec2('create_tags', {
          Resources: [instance],
          Tags: ids(51, (i) => ({ Key: `tag-${i}`, Value: 'v' })),
        }),
      ],
    },
    'CreateTags DryRunOperation': {
      steps: [ec2('create_tags', { Resources: [instance], Tags: [{ Key: 'k', Value: 'v' }], DryRun: true })],
      status: 412,
    },
    'DescribeTags / DescribeInstances InvalidParameterValue': {
      steps: [ec2('describe_tags', { Filters: [{ Name: 'colour', Values: ['blue'] }] })],
    },
    'DescribeTags / DescribeInstances InvalidParameterCombination': {
      steps: [ec2('describe_instances', { InstanceIds: [instance], MaxResults: 5 })],
    },
    'DescribeTags / DescribeInstances InvalidPaginationToken': {
      steps: [ec2('describe_tags', { NextToken: 'not-a-token' })],
    },
    'DescribeTags / DescribeInstances InvalidInstanceID.NotFound': {
      steps: [ec2('describe_instances', { InstanceIds: [NO_INSTANCE] })],
    },
    'Invoke ResourceNotFoundException': {
      steps: [lambda('invoke', { FunctionName: 'no-such-function' })],
      message: /^Function not found: arn:aws:lambda:us-east-1:123456789012:function:no-such-function$/,
      status: 404,
    },
    'Invoke InvalidRequestContentException': {
      steps: [lambda('invoke', { FunctionName: FUNCTION, Payload: 'not json' })],
      message: /^Could not parse request body into json: /,
    },
    'Invoke RequestEntityTooLargeException': {
      steps: [lambda('invoke', { FunctionName: FUNCTION, Payload: `"${'x'.repeat(6_291_456)}"` })],
      message: /^Request must be smaller than 6291456 bytes for the InvokeFunction operation$/,
      status: 413,
    },
    'Invoke ValidationException': {
      steps: [lambda('invoke', { FunctionName: FUNCTION, InvocationType: 'Sometimes' }, false)],
    },
    // Operations AWS has and the stand-in does not: as AWS answers an unknown one.
    'Auto Scaling any other operation InvalidAction': {
      steps: [asg('describe_launch_configurations', {})],
      message: /^Could not find operation DescribeLaunchConfigurations for version 2011-01-01$/,
    },
    'SSM any other operation UnknownOperationException': {
      steps: [ssm('list_document_versions', { Name: 'SelfDeploy' })],
      message: /^$/,
    },
    'EC2 any other operation InvalidAction': {
      steps: [ec2('describe_vpcs', {})],
      message: /^The action DescribeVpcs is not valid for this web service\.$/,
    },
    'Lambda any other operation UnknownOperationException': {
      steps: [lambda('get_function', { FunctionName: FUNCTION })],
      status: 404,
    },
  };
}

const apiOperations = (operation: string) => (/^[A-Z]/.test(operation) ? operation.split(' / ') : []);
/**
 * The rows boto3 drives here. SQS's rows are driven by test/e2e/sqs.test.ts with
 * @aws-sdk/client-sqs: the Debian boto3 (1.26) speaks SQS's older query protocol, which
 * the stand-in does not serve.
 */
const BOTO3_ROWS = FIDELITY.filter(
  (row): row is (typeof FIDELITY)[number] & { service: keyof typeof CLIENTS } => row.service in CLIENTS,
);
/** A row's name in the error cases: its operations, or its service and what it models. */
const rowKey = (row: (typeof FIDELITY)[number]) =>
  /^[A-Z]/.test(row.operation) ? row.operation : `${row.service} ${row.operation}`;
/** What an operation needs to reach the service at all: Invoke names its function in the path. */
const LEAST_PARAMS: Readonly<Record<string, Record<string, unknown>>> = {
  Invoke: { FunctionName: FUNCTION },
};
const snakeCase = (name: string) =>
  name.replace(/[A-Z]/g, (c, i: number) => `${i > 0 ? '_' : ''}${c.toLowerCase()}`);

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), 'conformance-home-'));
  kept = await startKept();
  const groups = (await aws('autoscaling', 'describe-auto-scaling-groups')).json as {
    AutoScalingGroups: { Instances: { InstanceId: string }[] }[];
  };
  instanceIds = groups.AutoScalingGroups.flatMap((g) => g.Instances.map((i) => i.InstanceId));
  await boto3([
    {
      service: 'autoscaling',
      op: 'create_auto_scaling_group',
      params: { AutoScalingGroupName: SPARE, MinSize: 0, MaxSize: 2 },
    },
  ]);
});

afterAll(async () => {
  if (kept) {
    kept.child.kill('SIGINT');
    await kept.exit;
    if (kept.runDir) rmSync(kept.runDir, { recursive: true, force: true });
  }
  if (home) rmSync(home, { recursive: true, force: true });
});

describe('the kept control plane, driven by the AWS CLI and boto3', () => {
  it('answers every operation its fidelity table names, not with the unknown-operation error', async () => {
    const operations = BOTO3_ROWS.flatMap((row) =>
      apiOperations(row.operation).map((operation) => ({ service: row.service, operation })),
    );
    // Empty requests, unchecked by the client: each operation answers its own error, or a result.
    const results = await boto3(
      operations.map(({ service, operation }) => ({
        service: CLIENTS[service],
        op: snakeCase(operation),
        params: LEAST_PARAMS[operation] ?? {},
        validate: false,
      })),
    );
    const unknown = operations.filter((_, i) =>
      ['InvalidAction', 'UnknownOperationException'].includes(results[i]?.code ?? ''),
    );
    expect(operations.length).toBeGreaterThan(10);
    expect(unknown).toEqual([]);
  });

  it('provokes every error code its fidelity table lists, answered with that code', async () => {
    const cases = errorCases();
    const listed = BOTO3_ROWS.flatMap((row) => row.errorCodes.map((code) => `${rowKey(row)} ${code}`));
    expect(Object.keys(cases).sort()).toEqual([...listed].sort());

    const keys = Object.keys(cases);
    const steps = keys.flatMap((key) => cases[key]?.steps ?? []);
    const results = await boto3(steps);
    let next = 0;
    const answered = keys.map((key) => {
      const count = cases[key]?.steps.length ?? 0;
      next += count;
      const last = results[next - 1];
      return { key, code: last?.code, status: last?.status, message: last?.message ?? '' };
    });
    const wrong = answered.filter(({ key, code, status, message }) => {
      const expected = key.slice(key.lastIndexOf(' ') + 1);
      const pattern = cases[key]?.message;
      const wanted = cases[key]?.status ?? 400;
      return code !== expected || status !== wanted || (pattern !== undefined && !pattern.test(message));
    });
    expect(wrong).toEqual([]);
  });

  it('answers a missing required parameter as AWS does, on both protocols', async () => {
    const [noDesired, noMinSize, noName] = await boto3([
      {
        service: 'autoscaling',
        op: 'set_desired_capacity',
        params: { AutoScalingGroupName: SPARE },
        validate: false,
      },
      {
        service: 'autoscaling',
        op: 'create_auto_scaling_group',
        params: { AutoScalingGroupName: 'no-min', MaxSize: 1 },
        validate: false,
      },
      { service: 'ssm', op: 'get_parameter', params: {}, validate: false },
    ]);
    const missing = (member: string) =>
      `1 validation error detected: Value null at '${member}' failed to satisfy constraint: Member must not be null`;
    expect(noDesired).toMatchObject({
      code: 'ValidationError',
      status: 400,
      message: missing('desiredCapacity'),
    });
    expect(noMinSize).toMatchObject({ code: 'ValidationError', status: 400, message: missing('minSize') });
    expect(noName).toMatchObject({ code: 'ValidationException', status: 400, message: missing('name') });
  });

  it('answers the describe calls with the kept run’s group, instances, hook and activities', async () => {
    const [groups, instances, hooks, activities, agents] = await Promise.all([
      aws('autoscaling', 'describe-auto-scaling-groups', '--auto-scaling-group-names', 'web'),
      aws('autoscaling', 'describe-auto-scaling-instances', '--instance-ids', ...instanceIds),
      aws('autoscaling', 'describe-lifecycle-hooks', '--auto-scaling-group-name', 'web'),
      aws('autoscaling', 'describe-scaling-activities', '--auto-scaling-group-name', 'web'),
      aws('ssm', 'describe-instance-information'),
    ]);
    expect(instanceIds).toHaveLength(2);
    expect(groups.json).toMatchObject({
      AutoScalingGroups: [{ AutoScalingGroupName: 'web', DesiredCapacity: 2, MaxSize: 10 }],
    });
    expect(
      (instances.json as { AutoScalingInstances: { LifecycleState: string }[] }).AutoScalingInstances.map(
        (i) => i.LifecycleState,
      ),
    ).toEqual(['InService', 'InService']);
    expect(hooks.json).toMatchObject({
      LifecycleHooks: [
        { AutoScalingGroupName: 'web', LifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING' },
      ],
    });
    const descriptions = (activities.json as { Activities: { Description: string }[] }).Activities.map(
      (a) => a.Description,
    );
    // Besides: the instance npm start's release flow adds, then scales back in.
    expect(descriptions.filter((d) => instanceIds.some((id) => d.endsWith(id))).sort()).toEqual(
      instanceIds.map((id) => `Launching a new EC2 instance: ${id}`).sort(),
    );
    const online = (agents.json as { InstanceInformationList: { InstanceId: string; PingStatus: string }[] })
      .InstanceInformationList;
    expect(online.filter((i) => instanceIds.includes(i.InstanceId)).map((i) => i.PingStatus)).toEqual([
      'Online',
      'Online',
    ]);
  });

  it('answers the lifecycle and command errors as AWS does', async () => {
    const [badToken, unknownInstance, unknownCommand] = await Promise.all([
      aws(
        'autoscaling',
        'complete-lifecycle-action',
        '--auto-scaling-group-name',
        'web',
        '--lifecycle-hook-name',
        'selfdeploy-launch',
        '--lifecycle-action-token',
        UNKNOWN_ID,
        '--lifecycle-action-result',
        'CONTINUE',
      ),
      aws('ssm', 'send-command', '--document-name', 'SelfDeploy', '--instance-ids', NO_INSTANCE),
      aws(
        'ssm',
        'get-command-invocation',
        '--command-id',
        UNKNOWN_ID,
        '--instance-id',
        instanceIds[0] as string,
      ),
    ]);
    expect(badToken.error).toBe('ValidationError');
    expect(badToken.stderr).toContain(`No active Lifecycle Action found with token ${UNKNOWN_ID}`);
    expect(unknownInstance.error).toBe('InvalidInstanceId');
    expect(unknownCommand.error).toBe('InvocationDoesNotExist');
  });

  it('has no invocation to read right after SendCommand, as AWS for a moment', async () => {
    const instance = instanceIds[0] as string;
    const [sent, read, listed] = await boto3([
      {
        service: 'ssm',
        op: 'send_command',
        params: {
          InstanceIds: [instance],
          DocumentName: 'AWS-RunShellScript',
          // Still running when read: a finished invocation is visible at once.
          Parameters: { commands: ['sleep 3'] },
        },
      },
      {
        service: 'ssm',
        op: 'get_command_invocation',
        params: { CommandId: { $ref: [0, 'Command', 'CommandId'] }, InstanceId: instance },
      },
      {
        service: 'ssm',
        op: 'list_command_invocations',
        params: { CommandId: { $ref: [0, 'Command', 'CommandId'] } },
      },
    ]);
    expect(sent?.ok).toBe(true);
    expect(read).toMatchObject({ ok: false, code: 'InvocationDoesNotExist' });
    expect(listed).toMatchObject({ ok: true, result: { CommandInvocations: [] } });
  });

  it('stores and reads Parameter Store parameters', async () => {
    const put = await aws(
      'ssm',
      'put-parameter',
      '--name',
      '/conformance/cli',
      '--value',
      'hello',
      '--type',
      'String',
    );
    const got = await aws('ssm', 'get-parameter', '--name', '/conformance/cli');
    expect(put.json).toMatchObject({ Version: 1 });
    expect(got.json).toMatchObject({
      Parameter: { Name: '/conformance/cli', Value: 'hello', Type: 'String' },
    });
  });

  it('invokes the kept run’s orchestrator with `aws lambda invoke`, the log tail included', async () => {
    const out = join(home, 'reconcile.json');
    const invoked = await aws(
      'lambda',
      'invoke',
      '--function-name',
      FUNCTION,
      '--cli-binary-format',
      'raw-in-base64-out',
      '--payload',
      '{"action":"reconcile"}',
      '--log-type',
      'Tail',
      out,
    );
    const malformed = await aws(
      'lambda',
      'invoke',
      '--function-name',
      FUNCTION,
      '--cli-binary-format',
      'raw-in-base64-out',
      '--payload',
      '{"action":"launch-rockets"}',
      join(home, 'malformed.json'),
    );
    const answer = invoked.json as { StatusCode?: number; ExecutedVersion?: string; LogResult?: string };

    expect(invoked.error).toBeUndefined();
    expect(answer).toMatchObject({ StatusCode: 200, ExecutedVersion: '$LATEST' });
    expect(Buffer.from(answer.LogResult ?? '', 'base64').toString()).toMatch(/^REPORT RequestId: /m);
    expect(JSON.parse(readFileSync(out, 'utf8'))).toMatchObject({ kind: 'reconcile' });
    expect(malformed.json).toMatchObject({ StatusCode: 200, FunctionError: 'Unhandled' });
    expect(JSON.parse(readFileSync(join(home, 'malformed.json'), 'utf8'))).toMatchObject({
      errorType: 'InvalidInputError',
    });
  });

  it('lists the kept run’s instances as EC2 instances tagged with their group, and tags them', async () => {
    const instance = instanceIds[0] as string;
    const tagged = await aws(
      'ec2',
      'create-tags',
      '--resources',
      instance,
      '--tags',
      'Key=selfdeploy:revision,Value=0123456789abcdef0123456789abcdef01234567',
    );
    const described = await aws(
      'ec2',
      'describe-instances',
      '--filters',
      'Name=tag:aws:autoscaling:groupName,Values=web',
    );
    const tags = await aws('ec2', 'describe-tags', '--filters', `Name=resource-id,Values=${instance}`);
    const instances = (
      described.json as { Reservations: { Instances: { InstanceId: string; State: { Name: string } }[] }[] }
    ).Reservations.flatMap((r) => r.Instances);

    expect(tagged.error).toBeUndefined();
    // The instance npm start's release flow scaled back in is listed too, terminated.
    const running = instances.filter((i) => i.State.Name === 'running');
    expect(running.map((i) => i.InstanceId).sort()).toEqual([...instanceIds].sort());
    expect(instances.filter((i) => i.State.Name !== 'running').map((i) => i.State.Name)).toEqual([
      'terminated',
    ]);
    expect((tags.json as { Tags: { Key: string; Value: string }[] }).Tags).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ Key: 'aws:autoscaling:groupName', Value: 'web' }),
        expect.objectContaining({ Key: 'selfdeploy:revision' }),
      ]),
    );
  });

  it('runs AWS-RunShellScript on an instance as its application user', async () => {
    const instance = instanceIds[1] as string;
    const sent = await aws(
      'ssm',
      'send-command',
      '--document-name',
      'AWS-RunShellScript',
      '--instance-ids',
      instance,
      '--parameters',
      '{"commands":["id -un"]}',
    );
    const commandId = (sent.json as { Command?: { CommandId?: string } } | undefined)?.Command?.CommandId;
    expect({ error: sent.error, sent: commandId !== undefined }).toEqual({ error: undefined, sent: true });
    let invocation: { Status?: string; StandardOutputContent?: string } = {};
    for (
      let i = 0;
      i < 60 && !['Success', 'Failed', 'TimedOut', 'Cancelled'].includes(invocation.Status ?? '');
      i++
    ) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const read = await aws(
        'ssm',
        'get-command-invocation',
        '--command-id',
        commandId as string,
        '--instance-id',
        instance,
      );
      if (read.json) invocation = read.json as typeof invocation;
    }
    expect(invocation).toMatchObject({ Status: 'Success', StandardOutputContent: `${kept.appUser}\n` });
  });

  it('scales out from set-desired-capacity, the new instance ending InService', async () => {
    const scaled = await aws(
      'autoscaling',
      'set-desired-capacity',
      '--auto-scaling-group-name',
      'web',
      '--desired-capacity',
      '3',
    );
    expect(scaled.error).toBeUndefined();
    let states: string[] = [];
    const deadline = Date.now() + 45_000;
    while (Date.now() < deadline) {
      const groups = (
        await aws('autoscaling', 'describe-auto-scaling-groups', '--auto-scaling-group-names', 'web')
      ).json as { AutoScalingGroups: { Instances: { LifecycleState: string }[] }[] };
      states = groups.AutoScalingGroups.flatMap((g) => g.Instances.map((i) => i.LifecycleState));
      if (states.length === 3 && states.every((s) => s === 'InService')) break;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    expect(states).toEqual(['InService', 'InService', 'InService']);
  });
});
