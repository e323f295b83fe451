import { createHash, createHmac, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { ApiError } from './api-error';

/** The one access key a control plane accepts. */
export interface Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

/**
 * The wire protocol a request speaks: its errors take that protocol's codes and status
 * (awsQuery 403, awsJson 400, REST-JSON behind Lambda's front end 403, EC2's query 401/403).
 */
export type Protocol = 'query' | 'json' | 'rest-json' | 'ec2';

const ALGORITHM = 'AWS4-HMAC-SHA256';
/** AWS accepts a request signed up to 15 minutes before or after its own clock. */
const MAX_SKEW_MS = 15 * 60 * 1000;
const UPPER_ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** Fresh credentials shaped like an IAM user's: `AKIA` + 16 upper-case alphanumerics, a 40-character secret. */
export function randomCredentials(): Credentials {
  const id = Array.from({ length: 16 }, () => UPPER_ALNUM[randomInt(UPPER_ALNUM.length)]).join('');
  // base64 of 30 bytes is 40 characters, the length of an AWS secret access key.
  return { accessKeyId: `AKIA${id}`, secretAccessKey: randomBytes(30).toString('base64') };
}

/** The codes AWS answers for each authentication failure, per protocol. */
const CODES = {
  missing: {
    query: 'MissingAuthenticationToken',
    json: 'MissingAuthenticationTokenException',
    'rest-json': 'MissingAuthenticationTokenException',
    ec2: 'MissingAuthenticationToken',
  },
  incomplete: {
    query: 'IncompleteSignature',
    json: 'IncompleteSignatureException',
    'rest-json': 'IncompleteSignatureException',
    ec2: 'IncompleteSignature',
  },
  unknownKey: {
    query: 'InvalidClientTokenId',
    json: 'UnrecognizedClientException',
    'rest-json': 'UnrecognizedClientException',
    ec2: 'AuthFailure',
  },
  signature: {
    query: 'SignatureDoesNotMatch',
    json: 'InvalidSignatureException',
    'rest-json': 'InvalidSignatureException',
    ec2: 'SignatureDoesNotMatch',
  },
} as const;

/** Every code `protocol` answers an authentication failure with (the fidelity table's signing rows). */
export function signingErrorCodes(protocol: Protocol): string[] {
  return Object.values(CODES).map((codes) => codes[protocol]);
}

/** The status each protocol answers an authentication failure with. */
function failureStatus(protocol: Protocol, kind: keyof typeof CODES): number {
  if (protocol === 'json') return 400;
  // EC2 answers an access key it does not know with 401 AuthFailure.
  if (protocol === 'ec2' && kind === 'unknownKey') return 401;
  if (protocol === 'ec2' && kind === 'incomplete') return 400;
  return 403;
}

const MISMATCH =
  'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';

/**
 * Verifies the request's AWS Signature Version 4 (Authorization header) against
 * `credentials` for `service` in `region`; throws the ApiError AWS answers otherwise.
 * Each protocol answers these with its own codes and status (see Protocol).
 */
export function verifySigV4(
  request: IncomingMessage,
  body: Buffer,
  expected: { credentials: Credentials; service: string; region: string; protocol: Protocol },
  now = Date.now(),
): void {
  const { protocol } = expected;
  const fail = (kind: keyof typeof CODES, message: string): never => {
    throw new ApiError(CODES[kind][protocol], message, failureStatus(protocol, kind));
  };
  const authorization = request.headers.authorization;
  if (!authorization) {
    fail(
      'missing',
      protocol === 'query' || protocol === 'ec2'
        ? 'Request is missing Authentication Token'
        : 'Missing Authentication Token',
    );
  }
  const header = parseAuthorization(String(authorization));
  if (!header) {
    fail(
      'incomplete',
      `Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters with the ${ALGORITHM} algorithm. Authorization=${String(authorization)}`,
    );
  }
  const { accessKeyId, date, region, service, signedHeaders, signature } = header as AuthorizationHeader;
  if (accessKeyId !== expected.credentials.accessKeyId) {
    fail(
      'unknownKey',
      protocol === 'ec2'
        ? 'AWS was not able to validate the provided access credentials'
        : 'The security token included in the request is invalid.',
    );
  }
  if (service !== expected.service) {
    fail('signature', `Credential should be scoped to correct service: '${expected.service}'. `);
  }
  if (region !== expected.region) {
    fail('signature', `Credential should be scoped to a valid region, not '${region}'. `);
  }
  const amzDate = headerValue(request, 'x-amz-date');
  const signedAt = amzDate === undefined ? Number.NaN : parseAmzDate(amzDate);
  if (amzDate === undefined || Number.isNaN(signedAt) || !signedHeaders.includes('x-amz-date')) {
    fail(
      'incomplete',
      "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    );
  }
  const at = amzDate as string;
  if (signedAt < now - MAX_SKEW_MS) {
    fail(
      'signature',
      `Signature expired: ${at} is now earlier than ${amz(now - MAX_SKEW_MS)} (${amz(now)} - 15 min.)`,
    );
  }
  if (signedAt > now + MAX_SKEW_MS) {
    fail(
      'signature',
      `Signature not yet current: ${at} is still later than ${amz(now + MAX_SKEW_MS)} (${amz(now)} + 15 min.)`,
    );
  }
  if (!at.startsWith(date))
    fail(
      'signature',
      `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${date}' != '${at.slice(0, 8)}', from '${at}'.`,
    );
  const scope = `${date}/${region}/${service}/aws4_request`;
  const canonical = canonicalRequest(request, body, signedHeaders);
  const stringToSign = [ALGORITHM, at, scope, sha256(canonical)].join('\n');
  let key = hmac(`AWS4${expected.credentials.secretAccessKey}`, date);
  for (const part of [region, service, 'aws4_request']) key = hmac(key, part);
  const wanted = Buffer.from(hmac(key, stringToSign).toString('hex'));
  const given = Buffer.from(signature);
  if (given.length !== wanted.length || !timingSafeEqual(given, wanted)) fail('signature', MISMATCH);
}

interface AuthorizationHeader {
  readonly accessKeyId: string;
  readonly date: string;
  readonly region: string;
  readonly service: string;
  readonly signedHeaders: readonly string[];
  readonly signature: string;
}

function parseAuthorization(value: string): AuthorizationHeader | undefined {
  if (!value.startsWith(`${ALGORITHM} `)) return undefined;
  const parts = new Map<string, string>();
  for (const part of value.slice(ALGORITHM.length + 1).split(',')) {
    const at = part.indexOf('=');
    if (at > 0) parts.set(part.slice(0, at).trim(), part.slice(at + 1).trim());
  }
  const credential = parts.get('Credential')?.split('/');
  const signedHeaders = parts.get('SignedHeaders');
  const signature = parts.get('Signature');
  if (credential?.length !== 5 || credential[4] !== 'aws4_request' || !signedHeaders || !signature) {
    return undefined;
  }
  const [accessKeyId = '', date = '', region = '', service = ''] = credential;
  return { accessKeyId, date, region, service, signedHeaders: signedHeaders.split(';'), signature };
}

/** The canonical request of SigV4: method, URI, query, signed headers and the payload's hash. */
function canonicalRequest(request: IncomingMessage, body: Buffer, signedHeaders: readonly string[]): string {
  const url = new URL(request.url ?? '/', 'http://localhost');
  // Services other than S3 encode each path segment twice: the client's encoding, then once more.
  const path = url.pathname
    .split('/')
    .map((segment) => rfc3986(rfc3986(decodeURIComponent(segment))))
    .join('/');
  const query = [...url.searchParams]
    .map(([name, value]) => [rfc3986(name), rfc3986(value)] as const)
    .sort(([a, x], [b, y]) => (a === b ? (x < y ? -1 : x > y ? 1 : 0) : a < b ? -1 : 1))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
  const headers = signedHeaders.map((name) => `${name}:${headerValue(request, name) ?? ''}\n`).join('');
  const payloadHash = headerValue(request, 'x-amz-content-sha256') ?? sha256(body);
  return [request.method ?? 'POST', path, query, headers, signedHeaders.join(';'), payloadHash].join('\n');
}

/** A header's values joined by commas, each trimmed with inner runs of spaces collapsed, as SigV4 canonicalises them. */
function headerValue(request: IncomingMessage, name: string): string | undefined {
  const values = request.headersDistinct[name];
  if (values === undefined) return undefined;
  return values.map((v) => v.trim().replace(/\s+/g, ' ')).join(',');
}

function rfc3986(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function parseAmzDate(value: string): number {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!match) return Number.NaN;
  const [, y, mo, d, h, mi, s] = match.map(Number) as number[];
  return Date.UTC(y ?? 0, (mo ?? 1) - 1, d, h, mi, s);
}

function amz(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}
