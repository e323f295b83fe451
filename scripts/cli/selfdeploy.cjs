#!/usr/bin/env node
// The `selfdeploy` bin: runs the TypeScript CLI with tsx, which `npm install` (scripts/setup.sh) provides.
require('tsx/cjs/api').require('./main.ts', __filename);
