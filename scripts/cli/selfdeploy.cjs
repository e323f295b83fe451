#!/usr/bin/env node
// The `selfdeploy` bin: runs the TypeScript CLI with tsx, which `npm install` (scripts/setup.sh) provides.
// The project supports Node 20 (package.json engines); the SDK's notice about its future versions
// would otherwise take nine lines of every command's output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
require('tsx/cjs/api').require('./main.ts', __filename);
