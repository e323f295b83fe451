// `npm run build`: the orchestrator bundle exactly as the CDK construct builds it, and the
// SelfDeploy document as JSON, into dist/ (for inspection, or for deploying without CDK).
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';
import { orchestratorBuildOptions, PROJECT_ROOT } from '../infra/bundling';
import { buildSelfDeployDocument } from '../infra/document';

async function main(): Promise<void> {
  const dist = join(PROJECT_ROOT, 'dist');
  mkdirSync(dist, { recursive: true });
  const bundle = join(dist, 'orchestrator', 'index.mjs');
  await build(orchestratorBuildOptions(bundle));
  const documentFile = join(dist, 'self-deploy-document.json');
  writeFileSync(documentFile, `${JSON.stringify(buildSelfDeployDocument(), null, 2)}\n`);
  const kib = (file: string) => `${(statSync(file).size / 1024).toFixed(1)} KiB`;
  console.log(`orchestrator bundle: ${bundle} (${kib(bundle)})`);
  console.log(`SelfDeploy document: ${documentFile} (${kib(documentFile)})`);
}

main().catch((error: unknown) => {
  console.error(`build failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
