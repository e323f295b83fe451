import {
  DeleteParameterCommand,
  DeleteParametersCommand,
  GetParameterCommand,
  GetParametersByPathCommand,
  type GetParametersByPathCommandInput,
  PutParameterCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { ControlPlane } from '../../scripts/local/control-plane/control-plane';
import { planeClientConfig } from './support';

// Parameter Store as the release store uses it, through the unmodified SSM client.
jest.setTimeout(30_000);

let plane: ControlPlane;
let ssm: SSMClient;

beforeEach(async () => {
  plane = await ControlPlane.start({ timeScale: 100 });
  ssm = new SSMClient(planeClientConfig(plane));
});

afterEach(async () => {
  ssm.destroy();
  await plane.close();
});

async function put(Name: string, Value = 'v', Overwrite = false): Promise<string> {
  return failure(ssm.send(new PutParameterCommand({ Name, Value, Type: 'String', Overwrite })));
}

/** 'ok', or the error's name and message. */
async function failure(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return 'ok';
  } catch (error) {
    const e = error as Error;
    return `${e.name}: ${e.message}`;
  }
}

/** Every name GetParametersByPath answers, page by page. */
async function byPath(input: GetParametersByPathCommandInput): Promise<{ names: string[]; pages: number[] }> {
  const names: string[] = [];
  const pages: number[] = [];
  let NextToken: string | undefined;
  do {
    const page = await ssm.send(new GetParametersByPathCommand({ ...input, NextToken }));
    pages.push(page.Parameters?.length ?? 0);
    names.push(...(page.Parameters ?? []).map((p) => p.Name ?? ''));
    NextToken = page.NextToken;
  } while (NextToken);
  return { names, pages };
}

describe('Parameter Store in the local control plane', () => {
  it('lists only the direct children of a path without Recursive, every level below it with', async () => {
    for (const name of [
      '/sd/web/release',
      '/sd/web/paused',
      '/sd/web/step-1/x',
      '/sd/web2/release',
      '/sd/api/release',
    ]) {
      expect(await put(name)).toBe('ok');
    }

    const direct = await byPath({ Path: '/sd/web', Recursive: false });
    const trailingSlash = await byPath({ Path: '/sd/web/' });
    const recursive = await byPath({ Path: '/sd', Recursive: true });
    const none = await byPath({ Path: '/sd' });
    const unknown = await byPath({ Path: '/nothing/here' });

    expect(direct.names).toEqual(['/sd/web/paused', '/sd/web/release']);
    expect(trailingSlash.names).toEqual(direct.names);
    expect(recursive.names).toEqual([
      '/sd/api/release',
      '/sd/web/paused',
      '/sd/web/release',
      '/sd/web/step-1/x',
      '/sd/web2/release',
    ]);
    expect(none.names).toEqual([]);
    expect(unknown.names).toEqual([]);
  });

  it('answers GetParametersByPath in pages of at most 10, and refuses MaxResults above 10', async () => {
    for (let i = 0; i < 23; i++) await put(`/many/p-${String(i).padStart(2, '0')}`);

    const all = await byPath({ Path: '/many' });
    const small = await byPath({ Path: '/many', MaxResults: 4 });
    const tooMany = await failure(
      ssm.send(new GetParametersByPathCommand({ Path: '/many', MaxResults: 11 })),
    );

    expect(all.pages).toEqual([10, 10, 3]);
    expect(all.names).toHaveLength(23);
    expect(new Set(all.names).size).toBe(23);
    expect(small.pages).toEqual([4, 4, 4, 4, 4, 3]);
    expect(tooMany).toBe(
      "ValidationException: 1 validation error detected: Value '11' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 10",
    );
  });

  it('returns values, versions and types, a SecureString as ciphertext unless decrypted', async () => {
    await put('/vals/plain', 'hello');
    await put('/vals/plain', 'hello again', true);
    await ssm.send(new PutParameterCommand({ Name: '/vals/secret', Value: 's3cret', Type: 'SecureString' }));

    const plain = await ssm.send(new GetParametersByPathCommand({ Path: '/vals' }));
    const decrypted = await ssm.send(new GetParametersByPathCommand({ Path: '/vals', WithDecryption: true }));

    expect(plain.Parameters?.map((p) => [p.Name, p.Type, p.Version])).toEqual([
      ['/vals/plain', 'String', 2],
      ['/vals/secret', 'SecureString', 1],
    ]);
    expect(plain.Parameters?.[0]?.Value).toBe('hello again');
    expect(plain.Parameters?.[1]?.Value).not.toBe('s3cret');
    expect(decrypted.Parameters?.[1]?.Value).toBe('s3cret');
  });

  it('creates with Overwrite false only once (the lock), and reads back its own write at once', async () => {
    const results = await Promise.all(Array.from({ length: 5 }, () => put('/lock/deployment', 'mine')));
    const read = await ssm.send(new GetParameterCommand({ Name: '/lock/deployment' }));

    expect(results.filter((r) => r === 'ok')).toHaveLength(1);
    expect(results.filter((r) => r.startsWith('ParameterAlreadyExists:'))).toHaveLength(4);
    expect(read.Parameter?.Value).toBe('mine');
  });

  it('deletes one parameter, and answers ParameterNotFound for one that is not there', async () => {
    await put('/del/one');

    const first = await failure(ssm.send(new DeleteParameterCommand({ Name: '/del/one' })));
    const again = await failure(ssm.send(new DeleteParameterCommand({ Name: '/del/one' })));
    const read = await failure(ssm.send(new GetParameterCommand({ Name: '/del/one' })));

    expect(first).toBe('ok');
    expect(again).toMatch(/^ParameterNotFound: /);
    expect(read).toMatch(/^ParameterNotFound: /);
  });

  it('deletes up to 10 parameters at once, naming those deleted and those that were not there', async () => {
    await put('/del/a');
    await put('/del/b');

    const answer = await ssm.send(
      new DeleteParametersCommand({ Names: ['/del/a', '/del/missing', '/del/b'] }),
    );
    const eleven = await failure(
      ssm.send(new DeleteParametersCommand({ Names: Array.from({ length: 11 }, (_, i) => `/del/${i}`) })),
    );

    expect(answer.DeletedParameters).toEqual(['/del/a', '/del/b']);
    expect(answer.InvalidParameters).toEqual(['/del/missing']);
    expect(eleven).toMatch(
      /^ValidationException: 1 validation error detected: Value '\[.*\]' at 'names' failed to satisfy constraint: Member must have length less than or equal to 10$/,
    );
    expect((await byPath({ Path: '/del' })).names).toEqual([]);
  });

  it('refuses values over the Standard tier’s 4096 characters and names SSM refuses', async () => {
    const fits = await put('/size/fits', 'x'.repeat(4096));
    const tooLong = await put('/size/big', 'x'.repeat(4097));
    const badNames = await Promise.all([
      put('/has space/x'),
      put('/aws/mine'),
      put('ssm-thing'),
      put('relative/path'),
      put(`/${Array.from({ length: 16 }, (_, i) => `l${i}`).join('/')}`),
    ]);
    const fifteen = await put(`/${Array.from({ length: 15 }, (_, i) => `l${i}`).join('/')}`);
    const badPath = await failure(ssm.send(new GetParametersByPathCommand({ Path: 'no-slash' })));

    expect(fits).toBe('ok');
    expect(tooLong).toMatch(
      /^ValidationException: Standard tier parameters support a maximum parameter value of 4096 characters\./,
    );
    expect(badNames.map((answer) => answer.slice(0, answer.indexOf(':')))).toEqual([
      'ValidationException',
      'ValidationException',
      'ValidationException',
      'ValidationException',
      'HierarchyLevelLimitExceededException',
    ]);
    expect(badNames[1]).toContain('can\'t be prefixed with "aws" or "ssm"');
    expect(badNames[3]).toBe('ValidationException: Parameter name must be a fully qualified name.');
    expect(fifteen).toBe('ok');
    expect(badPath).toMatch(
      /^ValidationException: The parameter doesn't meet the parameter name requirements/,
    );
  });
});
