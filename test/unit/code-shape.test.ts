import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import * as ts from 'typescript';

// The orchestrator's layering, checked on the source: each test here fails when a module
// reaches past the layer it belongs to.

const ROOT = resolve(__dirname, '..', '..');
const ORCHESTRATOR = join(ROOT, 'functions', 'orchestrator');
const TESTS = join(ROOT, 'test');
/** Packages that do no I/O: validation only. */
const PURE_PACKAGES = ['zod/mini', 'zod/locales'];

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

/** Every package `path` reaches, following its relative imports through the project's files. */
function packagesReached(path: string, seen = new Set<string>()): Set<string> {
  const packages = new Set<string>();
  if (seen.has(path)) return packages;
  seen.add(path);
  for (const specifier of imports(path)) {
    if (specifier.startsWith('.')) {
      for (const found of packagesReached(`${resolve(dirname(path), specifier)}.ts`, seen))
        packages.add(found);
    } else {
      packages.add(specifier);
    }
  }
  return packages;
}

/** The names a module exports. */
function exportedNames(path: string): string[] {
  return parse(path).statements.flatMap((statement) => {
    const exported = ts.canHaveModifiers(statement)
      ? ts.getModifiers(statement)?.some((modifier) => modifier.kind === ts.SyntaxKind.ExportKeyword)
      : false;
    if (!exported) return [];
    if (ts.isVariableStatement(statement)) {
      return statement.declarationList.declarations.map((declaration) => declaration.name.getText());
    }
    const named =
      ts.isFunctionDeclaration(statement) ||
      ts.isClassDeclaration(statement) ||
      ts.isInterfaceDeclaration(statement) ||
      ts.isTypeAliasDeclaration(statement);
    return named && statement.name ? [statement.name.text] : [];
  });
}

/** `expr as T` and `<T>expr` in a file, as written. */
function typeAssertions(path: string): string[] {
  const source = parse(path);
  const found: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isAsExpression(node) || ts.isTypeAssertionExpression(node)) found.push(node.getText(source));
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

const orchestratorModule = (name: string) => join(ORCHESTRATOR, `${name}.ts`);

describe('the orchestrator modules', () => {
  it('start a deploy through deploy-start, which launch and reconcile share; only the entry points (router, queue) import launch', () => {
    const importers = readdirSync(ORCHESTRATOR)
      .filter((name) => name.endsWith('.ts'))
      .filter((name) => imports(join(ORCHESTRATOR, name)).includes('./launch'));
    expect(importers).toEqual(['queue.ts', 'router.ts']);
    expect(imports(orchestratorModule('launch'))).toContain('./deploy-start');
    expect(imports(orchestratorModule('reconcile'))).toContain('./deploy-start');
  });

  it('keep decisions.ts pure: neither it nor anything it imports reaches a package that does I/O', () => {
    const impure = [...packagesReached(orchestratorModule('decisions'))].filter(
      (name) => !PURE_PACKAGES.includes(name),
    );
    expect(impure).toEqual([]);
  });

  it('keep the generic helpers in utilities.ts, which imports nothing, apart from the decisions', () => {
    const helpers = ['backoffMs', 'chunk', 'mapLimited'];
    expect(exportedNames(orchestratorModule('utilities'))).toEqual(expect.arrayContaining(helpers));
    expect(imports(orchestratorModule('utilities'))).toEqual([]);
    expect(exportedNames(orchestratorModule('decisions')).filter((name) => helpers.includes(name))).toEqual(
      [],
    );
  });

  it('narrow in reconcile by checks, never by a type assertion', () => {
    expect(typeAssertions(orchestratorModule('reconcile'))).toEqual([]);
  });
});

describe('the tests', () => {
  it('build their fixtures with their real types: no `as never`', () => {
    const casts = readdirSync(TESTS, { recursive: true, encoding: 'utf8' })
      .filter((name) => name.endsWith('.ts'))
      .flatMap((name) =>
        typeAssertions(join(TESTS, name))
          .filter((text) => /\bas never$/.test(text))
          .map((text) => `${name}: ${text}`),
      );
    expect(casts).toEqual([]);
  });
});
