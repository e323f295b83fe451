// Matchers such as toHaveReceivedCommandWith for aws-sdk-client-mock.
import 'aws-sdk-client-mock-jest';

// The deployed function runs on Node 22; this machine's Node 20 would make every SDK
// client print a support notice into the test output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
