/**
 * What the local stand-in for AWS models faithfully and what it does not, as data: the
 * README's table is generated from it (`npx tsx scripts/local/fidelity.ts --write`) and a
 * test checks that the README holds exactly this table and that every operation the control
 * plane answers is in it; the conformance test calls every operation a row names and
 * provokes every error code a row lists.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { signingErrorCodes } from './control-plane/sigv4';

/** One operation (or piece of the simulated world) and how far the stand-in goes. */
export interface Fidelity {
  readonly service: 'Auto Scaling' | 'EC2' | 'SSM' | 'SQS' | 'Lambda' | 'EventBridge + Lambda' | 'Instances';
  /** API operations, `/`-separated, or (in lower case) a part of the world or "any other operation". */
  readonly operation: string;
  readonly modelled: string;
  readonly errors: string;
  /** The error codes `errors` names, one provoking case each in the conformance test. */
  readonly errorCodes: readonly string[];
  readonly notModelled: string;
}

export const FIDELITY: readonly Fidelity[] = [
  {
    service: 'Auto Scaling',
    operation: 'request signing',
    modelled:
      "every request must carry a SigV4 signature (Authorization header, x-amz-date within 15 minutes) made with the run's own random access key for service autoscaling in the run's region",
    errors:
      'status 403: MissingAuthenticationToken (no Authorization header), InvalidClientTokenId (another key), SignatureDoesNotMatch (wrong signature, wrong scope, "Signature expired"); IncompleteSignature (malformed header)',
    errorCodes: signingErrorCodes('query'),
    notModelled:
      'session tokens (X-Amz-Security-Token), presigned query-string signatures, the Date header instead of x-amz-date, IAM policies (no call is denied unless a test injects a denial)',
  },
  {
    service: 'SSM',
    operation: 'request signing',
    modelled:
      "every request must carry a SigV4 signature (Authorization header, x-amz-date within 15 minutes) made with the run's own random access key for service ssm in the run's region",
    errors:
      'status 400: MissingAuthenticationTokenException, UnrecognizedClientException, InvalidSignatureException, IncompleteSignatureException, as for Auto Scaling',
    errorCodes: signingErrorCodes('json'),
    notModelled:
      'session tokens (X-Amz-Security-Token), presigned query-string signatures, the Date header instead of x-amz-date, IAM policies (no call is denied unless a test injects a denial)',
  },
  {
    service: 'Auto Scaling',
    operation: 'CreateAutoScalingGroup',
    modelled: 'MinSize, MaxSize, DesiredCapacity, Tags; launches up to the desired capacity at once',
    errors:
      'AlreadyExists; ValidationError (min above max, "Desired capacity:N must be between the specified min size:N and max size:N", MinSize or MaxSize missing)',
    errorCodes: ['AlreadyExists', 'ValidationError'],
    notModelled:
      'launch templates, subnets (one Availability Zone), health checks, instance refresh; LimitExceeded for the account’s group quota, ServiceLinkedRoleFailure',
  },
  {
    service: 'Auto Scaling',
    operation: 'PutLifecycleHook',
    modelled:
      'launch hooks, up to 50 per group: HeartbeatTimeout 30–7200 s, DefaultResult (ABANDON by default), NotificationMetadata, GlobalTimeout min(48 h, 100 × heartbeat); applies to later launches only; an instance waits for every hook, with one event and token per hook',
    errors: 'ValidationError (timeout out of range, not a launch transition); LimitExceeded',
    errorCodes: ['ValidationError', 'LimitExceeded'],
    notModelled: 'terminate hooks, SNS/SQS notification targets',
  },
  {
    service: 'Auto Scaling',
    operation: 'DescribeLifecycleHooks',
    modelled:
      'AutoScalingGroupName, LifecycleHookNames; LifecycleHookName, LifecycleTransition, NotificationMetadata, HeartbeatTimeout, GlobalTimeout, DefaultResult',
    errors: 'ValidationError (unknown group)',
    errorCodes: ['ValidationError'],
    notModelled: 'RoleARN, NotificationTargetARN',
  },
  {
    service: 'Auto Scaling',
    operation: 'SetDesiredCapacity',
    modelled:
      'scale-out draws ready warmed instances first, then launches; scale-in takes the newest instances (back to the warm pool with ReuseOnScaleIn)',
    errors: 'ValidationError (above max, below min, DesiredCapacity missing)',
    errorCodes: ['ValidationError'],
    notModelled:
      'HonorCooldown (and its ScalingActivityInProgress), termination policies, scale-in protection',
  },
  {
    service: 'Auto Scaling',
    operation: 'CompleteLifecycleAction / RecordLifecycleActionHeartbeat',
    modelled:
      'by token or InstanceId, in Pending:Wait and Warmed:Pending:Wait; with both, both must name the same action; a heartbeat restarts the heartbeat timeout, never past the global timeout; a new wait gets a new token',
    errors:
      'ValidationError "No active Lifecycle Action found with token <token>" (a token was given) or "… with instance ID <id>" (wrong hook, ended or foreign wait); ValidationError for a result other than CONTINUE/ABANDON',
    errorCodes: ['ValidationError'],
    notModelled: '-',
  },
  {
    service: 'Auto Scaling',
    operation: 'DescribeAutoScalingGroups',
    modelled: 'AutoScalingGroupNames, MaxRecords ≤ 100, NextToken; Instances in the group (not warmed ones)',
    errors: 'ValidationError (MaxRecords); InvalidNextToken',
    errorCodes: ['ValidationError', 'InvalidNextToken'],
    notModelled: 'Filters, launch template details, warm pool size fields',
  },
  {
    service: 'Auto Scaling',
    operation: 'DescribeAutoScalingInstances',
    modelled: 'InstanceIds ≤ 50 (unknown ids ignored), warmed instances included, MaxRecords ≤ 50, NextToken',
    errors: 'ValidationError (more than 50 ids); InvalidNextToken',
    errorCodes: ['ValidationError', 'InvalidNextToken'],
    notModelled: '-',
  },
  {
    service: 'Auto Scaling',
    operation: 'DescribeScalingActivities',
    modelled:
      'AutoScalingGroupName, ActivityIds ≤ 50 (unknown ignored), MaxRecords ≤ 100, NextToken; in-progress first, each part newest first by StartTime; "Launching a new EC2 instance: i-…", "… into warm pool: i-…", "… from warm pool: i-…", "Terminating EC2 instance: i-…"; MidLifecycleAction while a hook waits, then Successful, or Cancelled with StatusMessage on ABANDON or timeout',
    errors: 'ValidationError (MaxRecords, more than 50 ids); InvalidNextToken',
    errorCodes: ['ValidationError', 'InvalidNextToken'],
    notModelled:
      'Filters, IncludeDeletedGroups, six-week retention, activities other than launches and terminations (a return to the warm pool has none); Cause wording is the stand-in’s own',
  },
  {
    service: 'Auto Scaling',
    operation: 'PutWarmPool / DescribeWarmPool',
    modelled:
      'MinSize, MaxGroupPreparedCapacity (default MaxSize), PoolState, InstanceReusePolicy.ReuseOnScaleIn; new pool instances wait at Warmed:Pending:Wait (event Origin EC2 → Destination WarmPool), then Warmed:Stopped (agent ConnectionLost) or Warmed:Running; leaving the pool: Pending:Wait again (WarmPool → AutoScalingGroup) with a new token, activity and boot, earlier commands kept in SSM history',
    errors:
      'ValidationError (MinSize, MaxGroupPreparedCapacity, PoolState); InvalidNextToken (DescribeWarmPool)',
    errorCodes: ['ValidationError', 'InvalidNextToken'],
    notModelled:
      'DeleteWarmPool, the terminate hook on a return to the pool (ReuseOnScaleIn returns without a wait), Hibernated (treated as Stopped), shrinking the pool when capacity grows',
  },
  {
    service: 'Auto Scaling',
    operation: 'EnterStandby / ExitStandby',
    modelled:
      'InstanceIds ≤ 20; EnterStandby (ShouldDecrementDesiredCapacity required) takes InService instances through EnteringStandby to Standby, decrementing the desired capacity by their number (never below MinSize) or, without the decrement, launching replacements; ExitStandby takes Standby instances through Pending to InService and increments the desired capacity (never above MaxSize); standby instances stay in the group (DescribeAutoScalingGroups lists them) but outside its capacity and scale-in; each instance gets an activity ("Moving EC2 instance to Standby: i-…", "Moving EC2 instance out of Standby: i-…"), answered InProgress and Successful a simulated second later; no launch lifecycle hook on the way back (AWS applies them to newly launched instances only)',
    errors:
      'ValidationError ("AutoScalingGroup <group> has min-size=N, max-size=N, and desired-size=N. To place into standby N instance(s), please update the AutoScalingGroup sizes appropriately.", the same "To exit standby …" above MaxSize, an instance not InService / not in Standby / not in the group, more than 20 ids, ShouldDecrementDesiredCapacity missing)',
    errorCodes: ['ValidationError'],
    notModelled:
      'load balancer deregistration and connection draining, Availability Zone rebalancing, the termination policy AWS applies when instances return from a standby entered without a decrement, ResourceContention',
  },
  {
    service: 'SSM',
    operation: 'SendCommand',
    modelled:
      'InstanceIds ≤ 50 or Targets (InstanceIds, tag:…); DocumentVersion ($DEFAULT when absent, $LATEST or a number), resolved when the command is sent: its runs get that version’s content and parameters, whatever becomes the default later; parameters checked against the document (unknown, missing, allowedPattern, allowedValues); Comment ≤ 100; MaxConcurrency, MaxErrors; TimeoutSeconds 30–2592000 (default 3600) as the delivery timeout: a command for a stopped instance (agent ConnectionLost) waits Pending for its agent and ends TimedOut / DeliveryTimedOut, ResponseCode -1, if it is not back in time; the execution timeout (the document’s timeoutSeconds / executionTimeout) ends a run TimedOut / ExecutionTimedOut, ResponseCode 137; a terminated instance’s invocations end Failed / Undeliverable; status-change events per command and per invocation',
    errors:
      'InvalidInstanceId (never registered or terminated: “Instances [[…]] not in a valid state for account …”), InvalidDocument, InvalidDocumentVersion (a version the document does not have), InvalidParameters (no message, as AWS), ValidationException (TimeoutSeconds, Comment, InstanceIds, DocumentVersion’s pattern, with AWS’s “1 validation error detected: …” text)',
    errorCodes: [
      'InvalidInstanceId',
      'InvalidDocument',
      'InvalidDocumentVersion',
      'InvalidParameters',
      'ValidationException',
    ],
    notModelled:
      'IAM conditions (every caller may send), output to S3 or CloudWatch Logs, DocumentHash, Targets by resource group',
  },
  {
    service: 'SSM',
    operation: 'documents: AWS-RunShellScript',
    modelled:
      'the Amazon-owned AWS-RunShellScript exists in every run: commands (StringList, one line each), workingDirectory (inside the instance’s own root; default its root), executionTimeout (1–172800, default 3600); on real-deploy instances the commands run as the run’s application user (runuser -u as root), HOME that user’s, AWS_SSM_INSTANCE_ID / AWS_SSM_REGION_NAME set; output, ResponseCode and Status as for SelfDeploy; stand-in instances (no operating system) answer Failed, ResponseCode 1, saying so on stderr',
    errors:
      'InvalidParameters (no commands, an unknown parameter, executionTimeout out of range); Failed, ResponseCode 1 for a workingDirectory that is not a directory inside the instance',
    errorCodes: ['InvalidParameters'],
    notModelled:
      'running as root (as the agent does on a real instance), the other AWS-… documents, ListDocuments',
  },
  {
    service: 'SSM',
    operation:
      'CreateDocument / UpdateDocument / UpdateDocumentDefaultVersion / DescribeDocument / GetDocument',
    modelled:
      'Command documents in JSON (schema 1.2, 2.0, 2.2) with versions 1, 2, …: UpdateDocument adds the next version (DocumentVersion, when given, must be the latest or $LATEST) and leaves the default as it was; UpdateDocumentDefaultVersion makes a version the default, which commands sent without a DocumentVersion (or with $DEFAULT) run from then on, while commands sent earlier keep the version they were sent with; DescribeDocument (Hash, HashType Sha256, Parameters, LatestVersion, DefaultVersion, Owner) and GetDocument (Content) of $DEFAULT, $LATEST or a number; at most 1000 versions per document; this is what a stack update of the construct does (its document’s updateMethod NewVersion)',
    errors:
      'InvalidDocument (no such document), DocumentAlreadyExists, InvalidDocumentVersion (a version the document does not have, an update of a version that is not the latest), DuplicateDocumentContent (content equal to the latest version’s), DocumentVersionLimitExceeded (a 1001st version), InvalidDocumentContent (not JSON, or not a Command document in JSON), InvalidDocumentSchemaVersion, InvalidDocumentOperation (changing an Amazon-owned AWS-… document), ValidationException (a version outside $DEFAULT, $LATEST and numbers; UpdateDocumentDefaultVersion takes numbers only)',
    errorCodes: [
      'InvalidDocument',
      'DocumentAlreadyExists',
      'InvalidDocumentVersion',
      'DuplicateDocumentContent',
      'DocumentVersionLimitExceeded',
      'InvalidDocumentContent',
      'InvalidDocumentSchemaVersion',
      'InvalidDocumentOperation',
      'ValidationException',
    ],
    notModelled:
      'YAML, other document types (Automation, Session, …), VersionName, DisplayName, attachments, tags, sharing, DeleteDocument, ListDocuments / ListDocumentVersions, the account’s quota of documents, document status Creating / Updating (a new version is Active at once)',
  },
  {
    service: 'SSM',
    operation: 'ListCommands / ListCommandInvocations / GetCommandInvocation',
    modelled:
      'CommandId, InstanceId, filters DocumentName, Status, InvokedAfter, InvokedBefore, MaxResults ≤ 50, NextToken; DocumentVersion as the command was sent ($DEFAULT when it named none); output cut to 24,000 / 8,000 characters (2,500 in plugin details); eventual consistency: for a propagation delay after SendCommand (ControlPlaneOptions.invocationVisibilitySeconds, default 1 simulated second; a finished invocation is visible at once) GetCommandInvocation answers InvocationDoesNotExist and ListCommandInvocations leaves the invocation out',
    errors:
      'InvocationDoesNotExist (GetCommandInvocation: unknown command, an instance the command was not sent to, not yet visible; no message, as AWS), InvalidCommandId (ListCommands), InvalidFilterKey, InvalidNextToken, ValidationException (a missing member, MaxResults)',
    errorCodes: ['InvalidCommandId', 'InvocationDoesNotExist', 'InvalidFilterKey', 'InvalidNextToken'],
    notModelled: 'other filter keys, command expiry',
  },
  {
    service: 'SSM',
    operation: 'DescribeInstanceInformation',
    modelled: 'filters InstanceIds, PingStatus, tag:…; Online, or ConnectionLost once stopped or terminated',
    errors: 'InvalidInstanceInformationFilterValue (other keys)',
    errorCodes: ['InvalidInstanceInformationFilterValue'],
    notModelled: 'Inactive, agent versions, hybrid nodes',
  },
  {
    service: 'SSM',
    operation: 'PutParameter / GetParameter / GetParametersByPath / DeleteParameter / DeleteParameters',
    modelled:
      'String, StringList, SecureString; Overwrite (false: an atomic create, refused when the name exists); versions; values up to the Standard tier’s 4096 characters; names checked as SSM checks them (letters, digits, . - _ and /; a name with / must start with it; no aws or ssm prefix; at most 15 levels); GetParametersByPath: without Recursive only the direct children of the path, with it every level below, MaxResults 1–10 (default 10), NextToken, WithDecryption; DeleteParameters: 1–10 names, answered in DeletedParameters and InvalidParameters; a SecureString read without WithDecryption returns a stand-in ciphertext; every read sees every earlier write',
    errors:
      'ParameterAlreadyExists, ParameterNotFound (GetParameter, DeleteParameter; no message, as AWS), ValidationException (Type, a missing member, a value over 4096 characters, a name or path SSM refuses, MaxResults above 10, more than 10 names), HierarchyLevelLimitExceededException (more than 15 levels)',
    errorCodes: [
      'ParameterAlreadyExists',
      'ParameterNotFound',
      'ValidationException',
      'HierarchyLevelLimitExceededException',
    ],
    notModelled:
      'KMS keys and key policies, parameter policies, the Advanced and Intelligent-Tiering tiers, ParameterFilters, labels, GetParameters / GetParameterHistory / DescribeParameters, the throughput quota',
  },
  {
    service: 'Auto Scaling',
    operation: 'any other operation',
    modelled: 'answered as AWS answers an action it does not know',
    errors: 'InvalidAction (HTTP 400) "Could not find operation <Action> for version 2011-01-01"',
    errorCodes: ['InvalidAction'],
    notModelled: 'the operations AWS has and the stand-in lacks answer this too',
  },
  {
    service: 'SSM',
    operation: 'any other operation',
    modelled: 'answered as AWS answers an X-Amz-Target it does not know',
    errors: 'UnknownOperationException (HTTP 400, no message)',
    errorCodes: ['UnknownOperationException'],
    notModelled: 'the operations AWS has and the stand-in lacks answer this too',
  },
  {
    service: 'EC2',
    operation: 'request signing',
    modelled:
      "EC2's query protocol (form POST with Action= and Version=2016-11-15, XML replies with requestId, errors as <Response><Errors><Error>), as @aws-sdk/client-ec2 speaks it; every request must carry a SigV4 signature made with the run's own key for service ec2 in the run's region; DryRun answers DryRunOperation (412), every caller being allowed",
    errors:
      'MissingAuthenticationToken (403), AuthFailure (401, an unknown key), SignatureDoesNotMatch (403), IncompleteSignature (400)',
    errorCodes: signingErrorCodes('ec2'),
    notModelled:
      'session tokens, presigned requests, IAM policies (UnauthorizedOperation only when a test injects a denial)',
  },
  {
    service: 'EC2',
    operation: 'CreateTags',
    modelled:
      'several ResourceId and several Tag at once, all or nothing; adds or overwrites; a missing Value is the empty string; keys 1–128 characters, not starting with aws: (any case), values ≤ 256, at most 50 user tags per resource; the instances are those of the Auto Scaling model, each an EC2 instance from its launch with aws:autoscaling:groupName and its group’s tags; eventual consistency: for a moment after a launch (ControlPlaneOptions.instanceVisibilitySeconds, default 1 simulated second) EC2 does not know the instance yet',
    errors:
      'InvalidParameterValue ("Value ( aws:… ) for parameter key is invalid. Tag keys starting with \'aws:\' are reserved for internal use", lengths), InvalidInstanceID.NotFound ("The instance ID \'i-…\' does not exist", "The instance IDs \'i-…, i-…\' do not exist"), InvalidInstanceID.Malformed, MissingParameter, TagLimitExceeded, DryRunOperation',
    errorCodes: [
      'InvalidParameterValue',
      'InvalidInstanceID.NotFound',
      'InvalidInstanceID.Malformed',
      'MissingParameter',
      'TagLimitExceeded',
      'DryRunOperation',
    ],
    notModelled:
      'resources other than instances (volumes, network interfaces, …), tags on launch (TagSpecifications), tag-based IAM conditions',
  },
  {
    service: 'EC2',
    operation: 'DescribeTags / DescribeInstances',
    modelled:
      'DescribeTags: filters resource-id, resource-type, key, value (with * and ? wildcards); DescribeInstances: InstanceIds, filters tag:<key>, tag-key, instance-id, instance-state-name; one reservation per instance with its state (running from its launch, stopped in a warm pool, terminated and still listed), launch time, Availability Zone and tags; MaxResults 5–1000 and NextToken (without MaxResults everything at once)',
    errors:
      'InvalidParameterValue (an unknown filter, MaxResults out of range), InvalidParameterCombination (InstanceIds with MaxResults), InvalidPaginationToken, InvalidInstanceID.NotFound, InvalidInstanceID.Malformed',
    errorCodes: [
      'InvalidParameterValue',
      'InvalidParameterCombination',
      'InvalidPaginationToken',
      'InvalidInstanceID.NotFound',
    ],
    notModelled:
      'the other filters, network and block-device fields (fixed placeholders), terminated instances disappearing after about an hour',
  },
  {
    service: 'EC2',
    operation: 'any other operation',
    modelled: 'answered as EC2 answers an action it does not know',
    errors: 'InvalidAction (HTTP 400) "The action <Action> is not valid for this web service."',
    errorCodes: ['InvalidAction'],
    notModelled: 'the operations EC2 has and the stand-in lacks answer this too',
  },
  {
    service: 'Lambda',
    operation: 'request signing',
    modelled:
      "REST-JSON (POST /2015-03-31/functions/{FunctionName}/invocations), as @aws-sdk/client-lambda, the AWS CLI and boto3 speak it; every request must carry a SigV4 signature made with the run's own key for service lambda in the run's region; errors name their code in x-amzn-ErrorType with Lambda's {Type, message} body",
    errors:
      'status 403: MissingAuthenticationTokenException, UnrecognizedClientException, InvalidSignatureException, IncompleteSignatureException',
    errorCodes: signingErrorCodes('rest-json'),
    notModelled:
      'session tokens, presigned requests, IAM and resource policies (AccessDeniedException only when a test injects a denial)',
  },
  {
    service: 'Lambda',
    operation: 'Invoke',
    modelled:
      'the function the local run creates (selfdeploy-orchestrator), by name, name:$LATEST, Qualifier $LATEST, partial ARN (account:function:name) or ARN, running the unmodified handler in the execution environments below; X-Amz-Invocation-Type RequestResponse (200, X-Amz-Executed-Version $LATEST; a handler that throws or times out answers X-Amz-Function-Error: Unhandled with {errorType, errorMessage, trace}; no result answers null), Event (202: queued, retried twice after a function error, ControlPlaneOptions.retryDelaysSeconds) and DryRun (204, nothing run); X-Amz-Log-Type: Tail answers the last 4 KB of the invocation’s log, base64, in X-Amz-Log-Result (START, the function’s own output, the runtime’s "Invoke Error" line, END, REPORT); an empty payload is the event {}; payloads up to 6 MB (RequestResponse) and 1 MB (Event)',
    errors:
      'ResourceNotFoundException (404, "Function not found: <arn>[:qualifier]": an unknown name, another account or region, a qualifier other than $LATEST), InvalidRequestContentException (400, "Could not parse request body into json: …"), RequestEntityTooLargeException (413, "Request must be smaller than 6291456 bytes for the InvokeFunction operation"; Event: "<n> byte payload is too large for the Event invocation type (limit 1048576 bytes)"), TooManyRequestsException (429, "Rate Exceeded.", Reason ReservedFunctionConcurrentInvocationLimitExceeded or ConcurrentInvocationLimitExceeded, from the function’s reserved and the account’s concurrency), ValidationException (an unknown invocation type)',
    errorCodes: [
      'ResourceNotFoundException',
      'InvalidRequestContentException',
      'RequestEntityTooLargeException',
      'ValidationException',
    ],
    notModelled:
      'versions and aliases, ClientContext, response streaming, the Invoke API’s own rate quota (throttling only from concurrency, or when a test injects it), the other Lambda operations (GetFunction, …), an asynchronous invocation’s event age and destinations',
  },
  {
    service: 'Lambda',
    operation: 'any other operation',
    modelled: 'answered as Lambda answers a REST path it does not serve',
    errors: 'UnknownOperationException (HTTP 404)',
    errorCodes: ['UnknownOperationException'],
    notModelled: 'the operations Lambda has and the stand-in lacks answer this too',
  },
  {
    service: 'SQS',
    operation: 'request signing',
    modelled:
      "awsJson1_0 (X-Amz-Target: AmazonSQS.<Op>, application/x-amz-json-1.0), as @aws-sdk/client-sqs speaks it; every request must carry a SigV4 signature made with the run's own key for service sqs in the run's region; errors carry SQS's x-amzn-query-error header, which the SDK reads to name them",
    errors:
      'status 400: MissingAuthenticationTokenException, UnrecognizedClientException, InvalidSignatureException, IncompleteSignatureException, as for SSM',
    errorCodes: signingErrorCodes('json'),
    notModelled:
      'the older query protocol (form POST with Action=) that boto3 before 1.31 and the AWS CLI of that era speak to SQS; session tokens; IAM and queue policies',
  },
  {
    service: 'SQS',
    operation: 'CreateQueue / GetQueueUrl / GetQueueAttributes / SetQueueAttributes',
    modelled:
      'standard queues; VisibilityTimeout (0–43200, default 30), DelaySeconds (0–900), MessageRetentionPeriod (60–1209600, default 4 days; counted from the first enqueue, on a dead-letter queue too), MaximumMessageSize (1024–262144), ReceiveMessageWaitTimeSeconds (0–20), RedrivePolicy {deadLetterTargetArn, maxReceiveCount 1–1000}; CreateQueue with the same attributes returns the same queue; GetQueueAttributes: QueueArn, ApproximateNumberOfMessages, …NotVisible, …Delayed, the settings, All',
    errors:
      'QueueNameExists (same name, other attributes), QueueDoesNotExist ("The specified queue does not exist."), InvalidAttributeName ("Unknown Attribute <name>."), InvalidParameterValue (a value out of range, a bad queue name, a redrive policy whose target does not exist), MissingParameter',
    errorCodes: [
      'QueueNameExists',
      'QueueDoesNotExist',
      'InvalidAttributeName',
      'InvalidParameterValue',
      'MissingParameter',
    ],
    notModelled:
      'FIFO queues, DeleteQueue, ListQueues, tags, server-side encryption, policies, RedriveAllowPolicy, the 60-second wait before a deleted name can be reused',
  },
  {
    service: 'SQS',
    operation: 'SendMessage / SendMessageBatch',
    modelled:
      'per-message DelaySeconds 0–900 (else the queue’s), message attributes (String, Number, Binary) with MD5OfMessageAttributes as SQS computes it, MD5OfMessageBody (which the SDK checks), bodies up to MaximumMessageSize (256 KiB), SQS’s character set; batches of up to 10 entries, each entry answered on its own in Successful or Failed',
    errors:
      'InvalidParameterValue (DelaySeconds, a body too long: "Value 901 for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= 900."), InvalidMessageContents, MissingParameter (no body); batches: EmptyBatchRequest, TooManyEntriesInBatchRequest, BatchEntryIdsNotDistinct, InvalidBatchEntryId, BatchRequestTooLong',
    errorCodes: [
      'InvalidParameterValue',
      'InvalidMessageContents',
      'MissingParameter',
      'EmptyBatchRequest',
      'TooManyEntriesInBatchRequest',
      'BatchEntryIdsNotDistinct',
      'InvalidBatchEntryId',
      'BatchRequestTooLong',
    ],
    notModelled: 'MessageSystemAttributes (AWSTraceHeader), FIFO fields (MessageGroupId, deduplication)',
  },
  {
    service: 'SQS',
    operation: 'ReceiveMessage',
    modelled:
      'MaxNumberOfMessages 1–10, WaitTimeSeconds 0–20 (a long poll on the simulated clock, answered as soon as a message is visible), VisibilityTimeout; a new receipt handle per receive; AttributeNames / MessageSystemAttributeNames (ApproximateReceiveCount, ApproximateFirstReceiveTimestamp, SentTimestamp, SenderId, All), MessageAttributeNames (names, prefix.*, All); at-least-once delivery: at a seeded rate (ControlPlaneOptions.duplicateDeliveries, 1% by default) a receive leaves a copy that a later receive hands out again, even after the first is deleted; redrive: a message received maxReceiveCount times moves to the dead-letter queue on its next receive',
    errors: 'InvalidParameterValue (MaxNumberOfMessages, WaitTimeSeconds, VisibilityTimeout out of range)',
    errorCodes: ['InvalidParameterValue'],
    notModelled:
      'short polling’s sampling of a subset of servers (every visible message is a candidate), ReceiveRequestAttemptId, the 120,000 in-flight limit (OverLimit)',
  },
  {
    service: 'SQS',
    operation:
      'DeleteMessage / DeleteMessageBatch / ChangeMessageVisibility / ChangeMessageVisibilityBatch / PurgeQueue',
    modelled:
      'only the latest receipt handle deletes or changes visibility; an older handle of the same queue succeeds and deletes nothing (AWS: "the message might not be deleted"); deleting a deleted message succeeds; ChangeMessageVisibility 0–43200 from now; batch entries answered one by one; one PurgeQueue per queue per 60 seconds',
    errors:
      'ReceiptHandleIsInvalid (status 404, a handle this queue never gave out), MessageNotInflight (visibility of a message not in flight), PurgeQueueInProgress (status 403)',
    errorCodes: ['ReceiptHandleIsInvalid', 'MessageNotInflight', 'PurgeQueueInProgress'],
    notModelled: 'receipt handles expiring after 12 hours in flight',
  },
  {
    service: 'SQS',
    operation: 'any other operation',
    modelled: 'answered as AWS answers an X-Amz-Target it does not know',
    errors: 'UnknownOperationException (HTTP 400, no message)',
    errorCodes: ['UnknownOperationException'],
    notModelled: 'the operations AWS has and the stand-in lacks answer this too',
  },
  {
    service: 'EventBridge + Lambda',
    operation: 'event source mapping (SQS)',
    modelled:
      'one mapping per queue, as the construct sets up (launches, status events), each with its own pollers; pollers long-poll the queue and invoke the function synchronously with Lambda’s SQS event (Records: messageId, receiptHandle, body, attributes, messageAttributes, md5OfBody, eventSource aws:sqs, eventSourceARN, awsRegion); BatchSize (default 10; above 10 needs MaximumBatchingWindowInSeconds, up to 10000), the batching window, ScalingConfig.MaximumConcurrency (2–1000) never exceeded; with ReportBatchItemFailures a response’s batchItemFailures keeps those items and deletes the rest, an empty or absent list deletes all, a malformed one (an empty, unknown or missing itemIdentifier) keeps all; an error, a timeout or a throttle keeps all, to come back after the visibility timeout (and count towards maxReceiveCount); a poller backs off 1 simulated second after a failed or throttled batch',
    errors: 'a configuration out of range is refused with one error naming every problem',
    errorCodes: [],
    notModelled:
      'the pollers’ gradual scale-up (all MaximumConcurrency pollers start at once), the 6 MB payload limit of a batch, filter criteria, FIFO ordering, the mapping’s own API (CreateEventSourceMapping)',
  },
  {
    service: 'EventBridge + Lambda',
    operation: 'execution environments and concurrency',
    modelled:
      'each concurrent invocation runs in an execution environment of its own: a cold start evaluates the function’s modules afresh (its own SDK clients, retry token buckets, module state), an environment runs one invocation at a time and is reused, a timed-out one is discarded; reserved concurrency and the account’s concurrency (default 1000, shareable between functions) throttle a synchronous invoke with TooManyRequestsException; an asynchronous invoke (EventBridge target) that is throttled is retried from 1 s doubling to 5 minutes for up to 6 hours; invocation records name their environment and the cold start’s init time; peak concurrency is recorded',
    errors: 'TooManyRequestsException ("Rate Exceeded.") past a concurrency limit',
    errorCodes: [],
    notModelled:
      'memory and CPU limits per environment (environments share a worker process’s CPU and library code; several per process), freezing between invocations, environments recycled after hours, burst concurrency limits',
  },
  {
    service: 'EventBridge + Lambda',
    operation: 'updates of the function (a stack update)',
    modelled:
      'LocalLambda.update() / LocalOrchestrator.updateConfig(), as UpdateFunctionCode / UpdateFunctionConfiguration: from then on every invocation runs in a new execution environment with the new code or environment variables (a cold start, in a new worker process), while invocations already running finish in their old environment, which is then discarded; events and queue messages already waiting are handled by the new code; invocation records name the function revision they ran',
    errors: '-',
    errorCodes: [],
    notModelled:
      'the update API over the wire (UpdateFunctionCode / UpdateFunctionConfiguration / GetFunction), the function’s LastUpdateStatus InProgress (the update applies at once; on AWS, invocations during it may still reach the old code), ResourceConflictException, versions and aliases',
  },
  {
    service: 'EventBridge + Lambda',
    operation: 'events and delivery',
    modelled:
      'launch lifecycle actions (token, metadata, Origin/Destination), command and invocation status changes, the orchestrator’s own rule patterns; asynchronous invocation with two retries, dead letters; lost and duplicated deliveries on demand',
    errors: '-',
    errorCodes: [],
    notModelled:
      'rule target retries beyond Lambda’s own, the placeholder `time` of AWS’s samples (times here are real)',
  },
  {
    service: 'Instances',
    operation: 'boot order',
    modelled:
      'the agent registers after a delay (optionally rate-limited: past the rate, agents register in the order they became ready) and boot finishes later (--boot-delay, on by default): user data clones the application on the first boot only and writes cloud-init’s boot-finished marker; the document’s boot check waits for that marker',
    errors: 'a deploy that does not wait for boot finds no deploy checkout and fails',
    errorCodes: [],
    notModelled: 'a failed boot, reboots (exit 194), instance metadata (IMDS)',
  },
  {
    service: 'Instances',
    operation: 'filesystem and users',
    modelled:
      'each instance deploys under its own root directory with its own state directory (lock, SSH key, known_hosts), which the run builds into the document (stateDirectory with {instanceId}); the document runs unmodified; one application user per run (as root: a new user, removed at the end; otherwise the current user)',
    errors: '-',
    errorCodes: [],
    notModelled: 'one OS user or sshd (host keys) per instance: all instances of a run share them',
  },
];

/** Where AWS documents no behaviour and the stand-in had to choose. */
export const CHOICES: readonly string[] = [
  'CompleteLifecycleAction / RecordLifecycleActionHeartbeat with both a token and an InstanceId: the strict reading, both must name the same action, else "No active Lifecycle Action found with token …".',
  'DescribeScalingActivities: the Cause texts are the stand-in’s wording (the Description prefixes are AWS’s); NextToken is an offset, so a page can repeat an activity when new ones start between calls.',
  'ResourceContention is never answered: the stand-in applies each update at once, so updates never contend.',
  'SSM document versions: the error messages are the API reference’s descriptions of the codes (AWS’s own texts are not documented), but for InvalidDocument, which keeps SendCommand’s “Document … does not exist”; DuplicateDocumentContent compares with the latest version only; changing an Amazon-owned document answers InvalidDocumentOperation.',
  'DocumentVersion in ListCommands, ListCommandInvocations and GetCommandInvocation is the version as the command was sent (`$DEFAULT` when it named none), not the number it resolved to: AWS’s examples show `$DEFAULT` for commands sent without one (and one GetCommandInvocation example an empty string).',
  'Requests are authenticated but not authorised: nothing is denied unless a test injects a denial (AccessDeniedException for SSM, AccessDenied with status 403 for Auto Scaling and SQS).',
  'SQS errors answer the `__type` AWS’s JSON protocol uses where the SDK’s model names one (`com.amazonaws.sqs#QueueDoesNotExist`), `com.amazon.coral.service#<Code>Exception` otherwise, always with the `x-amzn-query-error` header the SDK names the error from; a missing required member answers MissingParameter.',
  'SQS duplicate deliveries are copies left by a receive (as a storage server that missed the receive would hold one): a copy is handed out once more and is not deleted with the original.',
  'Lambda Invoke over its quota: the Invoke API reference lists RequestTooLargeException (413), but the service answers an oversized payload with RequestEntityTooLargeException (413) and "Request must be smaller than 6291456 bytes for the InvokeFunction operation", as SDK users report it; the stand-in answers what the service answers.',
  'Lambda Invoke with an invocation type outside RequestResponse, Event and DryRun: ValidationException in AWS’s "1 validation error detected: …" wording (AWS documents no answer).',
  'EnterStandby / ExitStandby: "The instance <id> is not in InService." / "… is not in Standby." / "… is not part of Auto Scaling group <group>." are the stand-in’s wording (the sizes error is AWS’s; its "To exit standby" form above MaxSize is modelled on it); after a standby entered without a decrement, ExitStandby increments the desired capacity and terminates nothing.',
  'Parameter Store: AWS documents no consistency model for it; the stand-in is read-after-write consistent (and PutParameter with Overwrite false is an atomic create), which selfdeploy’s lock relies on.',
  'EC2: CreateTags on a terminated instance (still listed) succeeds; the eventual consistency after a launch covers every EC2 read and CreateTags alike.',
];

const START = '<!-- fidelity table: generated from scripts/local/fidelity.ts -->';
const END = '<!-- end of fidelity table -->';
export const README_PATH = join(__dirname, 'README.md');

/** The README section: the table, then the choices. */
export function fidelitySection(): string {
  const cell = (text: string) => text.replace(/\|/g, '\\|');
  const rows = FIDELITY.map(
    (f) =>
      `| ${f.service} | ${cell(f.operation)} | ${cell(f.modelled)} | ${cell(f.errors)} | ${cell(f.notModelled)} |`,
  );
  return [
    START,
    '| Service | Operation | Modelled | Errors | Not modelled |',
    '| --- | --- | --- | --- | --- |',
    ...rows,
    '',
    'Where AWS documents no behaviour, the stand-in chose:',
    '',
    ...CHOICES.map((choice) => `- ${choice}`),
    END,
  ].join('\n');
}

/** The README's current section, or undefined when its markers are missing. */
export function readmeSection(readme: string): string | undefined {
  const start = readme.indexOf(START);
  const end = readme.indexOf(END);
  return start < 0 || end < start ? undefined : readme.slice(start, end + END.length);
}

if (require.main === module && process.argv.includes('--write')) {
  const readme = readFileSync(README_PATH, 'utf8');
  const current = readmeSection(readme);
  if (current === undefined) throw new Error(`${README_PATH} has no fidelity table markers`);
  writeFileSync(README_PATH, readme.replace(current, fidelitySection()));
}
