import { en } from 'zod/locales';
import * as z from 'zod/mini';
import { DOCUMENT_PARAMETERS, type DocumentParameterName } from './document-contract';

// zod/mini ships without messages; English ones make every rejection say what was wrong.
z.config(en());

/** A string schema that accepts exactly what the SelfDeploy document accepts for `name`. */
export function documentParameter(name: DocumentParameterName) {
  const { pattern } = DOCUMENT_PARAMETERS[name];
  return z.string().check(z.regex(new RegExp(pattern), `must match ${pattern}`));
}

/** Every problem in one line: `path: message; path: message`. */
export function describeIssues(error: z.core.$ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.map(String).join('.');
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join('; ');
}
