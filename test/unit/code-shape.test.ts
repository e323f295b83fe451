import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as ts from 'typescript';

// The orchestrator's layering, checked on the source: each test here fails when a module
// reaches past the layer it belongs to.

const ROOT = resolve(__dirname, '..', '..');
const ORCHESTRATOR = join(ROOT, 'functions', 'orchestrator');

function parse(path: string): ts.SourceFile {
  return ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest, true);
}

/** The module specifiers a file imports, type-only imports included. */
function imports(path: string): string[] {
  return parse(path).statements.flatMap((statement) =>
    ts.isImportDeclaration(statement) && ts.isStringLiteral(statement.moduleSpecifier)
      ? [statement.moduleSpecifier.text]
      : [],
  );
}

const orchestratorModule = (name: string) => join(ORCHESTRATOR, `${name}.ts`);

describe('the orchestrator modules', () => {
  it('start a deploy through deploy-start, which launch and reconcile share; only the router imports launch', () => {
    const importers = readdirSync(ORCHESTRATOR)
      .filter((name) => name.endsWith('.ts'))
      .filter((name) => imports(join(ORCHESTRATOR, name)).includes('./launch'));
    expect(importers).toEqual(['router.ts']);
    expect(imports(orchestratorModule('launch'))).toContain('./deploy-start');
    expect(imports(orchestratorModule('reconcile'))).toContain('./deploy-start');
  });
});
