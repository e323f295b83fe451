import { ApiError } from './api-error';
import { QueryInput } from './auto-scaling-protocol';
import { type Ec2, type Ec2Instance, INSTANCE_STATES, type ResourceTag } from './ec2';

/** The API version every EC2 request names; Auto Scaling's form requests name 2011-01-01. */
export const EC2_VERSION = '2016-11-15';
const XMLNS = `http://ec2.amazonaws.com/doc/${EC2_VERSION}/`;

/** EC2's query input: `Action=CreateTags&ResourceId.1=…&Tag.1.Key=…&Filter.1.Value.1=…`. */
export class Ec2Input extends QueryInput {
  public constructor(body: string) {
    super(body, '');
  }

  /** `Tag.N.Key` / `Tag.N.Value` pairs (a missing value is the empty string, as EC2 sets it). */
  public tags(): { key: string; value: string }[] {
    const tags: { key: string; value: string }[] = [];
    for (let i = 1; this.has(`Tag.${i}.Key`); i++) {
      tags.push({
        key: this.string(`Tag.${i}.Key`) ?? '',
        value: this.string(`Tag.${i}.Value`) ?? '',
      });
    }
    return tags;
  }

  /** `Filter.N.Name` with its `Filter.N.Value.M` values. */
  public filters(): { name: string; values: string[] }[] {
    const filters: { name: string; values: string[] }[] = [];
    for (let i = 1; this.has(`Filter.${i}.Name`); i++) {
      filters.push({
        name: this.string(`Filter.${i}.Name`) ?? '',
        values: this.list(`Filter.${i}.Value`),
      });
    }
    return filters;
  }
}

/** Instance ids an EC2 request is about, to count calls per instance. */
export function ec2InstanceIds(input: Ec2Input): string[] {
  return [...input.list('ResourceId'), ...input.list('InstanceId')];
}

type Xml = string | number | boolean | undefined | readonly Xml[] | { readonly [key: string]: Xml };

/** EC2's XML: objects → elements, lists → `<item>` elements. */
function toXml(value: Xml): string {
  if (value === undefined) return '';
  if (Array.isArray(value)) return value.map((item: Xml) => `<item>${toXml(item)}</item>`).join('');
  if (typeof value === 'object') {
    return Object.entries(value as { [key: string]: Xml })
      .filter(([, v]) => v !== undefined)
      .map(([key, v]) => `<${key}>${toXml(v)}</${key}>`)
      .join('');
  }
  return String(value).replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A successful reply: `<XResponse xmlns=…><requestId>…</requestId>…</XResponse>`. */
export function ec2Response(action: string, result: Xml, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${action}Response xmlns="${XMLNS}"><requestId>${requestId}</requestId>${toXml(result)}</${action}Response>\n`;
}

/** EC2's error shape, which differs from the other query services': `<Response><Errors><Error>…`. */
export function ec2Error(error: ApiError, requestId: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${toXml(error.code)}</Code><Message>${toXml(error.message)}</Message></Error></Errors><RequestID>${requestId}</RequestID></Response>\n`;
}

/** Runs one EC2 action; returns the reply's content. */
export function runEc2(model: Ec2, input: Ec2Input, account: string): Xml {
  if (input.string('DryRun') === 'true') {
    // Every caller is allowed here (see the fidelity table), so a dry run would always succeed.
    throw new ApiError('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.', 412);
  }
  switch (input.action) {
    case 'CreateTags':
      model.createTags(input.list('ResourceId'), input.tags());
      return { return: true };
    case 'DescribeTags': {
      const tags = model.tags().filter((tag) => input.filters().every((filter) => tagFilter(tag, filter)));
      const page = paginate(tags, input);
      return { tagSet: page.items.map(tagXml), nextToken: page.nextToken };
    }
    case 'DescribeInstances': {
      const ids = input.list('InstanceId');
      if (ids.length > 0 && input.string('MaxResults') !== undefined) {
        throw new ApiError(
          'InvalidParameterCombination',
          'The parameter instancesSet cannot be used with the parameter maxResults',
        );
      }
      const filters = input.filters();
      const instances = (ids.length > 0 ? model.named(ids) : model.instances()).filter((instance) =>
        filters.every((filter) => instanceFilter(instance, filter)),
      );
      const page = paginate(instances, input);
      return {
        // One reservation per instance: each is a launch of its own by Auto Scaling.
        reservationSet: page.items.map((instance) => ({
          reservationId: `r-${instance.id.slice(2)}`,
          ownerId: account,
          requesterId: '940372691376',
          groupSet: [],
          instancesSet: [instanceXml(instance)],
        })),
        nextToken: page.nextToken,
      };
    }
    default:
      throw new ApiError('InvalidAction', `The action ${input.action} is not valid for this web service.`);
  }
}

function tagXml(tag: ResourceTag): Xml {
  return { resourceId: tag.resourceId, resourceType: tag.resourceType, key: tag.key, value: tag.value };
}

function instanceXml(instance: Ec2Instance): Xml {
  return {
    instanceId: instance.id,
    imageId: 'ami-0local0000000000',
    instanceState: { code: INSTANCE_STATES[instance.state], name: instance.state },
    privateDnsName: `ip-127-0-0-1.ec2.internal`,
    dnsName: '',
    instanceType: 't4g.micro',
    launchTime: new Date(instance.launchedAt).toISOString(),
    placement: { availabilityZone: instance.availabilityZone, tenancy: 'default' },
    monitoring: { state: 'disabled' },
    privateIpAddress: '127.0.0.1',
    architecture: 'arm64',
    tagSet: [...instance.tags].map(([key, value]) => ({ key, value })),
  };
}

/** DescribeTags' filters; values may hold the wildcards `*` and `?`. */
function tagFilter(tag: ResourceTag, filter: { name: string; values: string[] }): boolean {
  const field = {
    'resource-id': tag.resourceId,
    'resource-type': tag.resourceType,
    key: tag.key,
    value: tag.value,
  }[filter.name];
  if (field === undefined) throw invalidFilter(filter.name);
  return filter.values.some((value) => wildcard(value).test(field));
}

/** DescribeInstances' filters the stand-in knows: tag:<key>, tag-key, instance-id, instance-state-name. */
function instanceFilter(instance: Ec2Instance, filter: { name: string; values: string[] }): boolean {
  const matches = (field: string | undefined) =>
    field !== undefined && filter.values.some((value) => wildcard(value).test(field));
  if (filter.name.startsWith('tag:')) return matches(instance.tags.get(filter.name.slice(4)));
  if (filter.name === 'tag-key') return [...instance.tags.keys()].some(matches);
  if (filter.name === 'instance-id') return matches(instance.id);
  if (filter.name === 'instance-state-name') return matches(instance.state);
  throw invalidFilter(filter.name);
}

function invalidFilter(name: string): ApiError {
  return new ApiError('InvalidParameterValue', `The filter '${name}' is invalid`);
}

function wildcard(pattern: string): RegExp {
  const escaped = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${escaped}$`);
}

/** MaxResults (5–1000) / NextToken paging; without MaxResults EC2 answers everything at once. */
function paginate<T>(items: readonly T[], input: Ec2Input) {
  const raw = input.string('MaxResults');
  const size = raw === undefined ? items.length : Number(raw);
  if (raw !== undefined && (!Number.isInteger(size) || size < 5 || size > 1000)) {
    throw new ApiError(
      'InvalidParameterValue',
      `Value ( ${raw} ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.`,
    );
  }
  const token = input.string('NextToken');
  const offset = token === undefined ? 0 : Number(token);
  if (!Number.isInteger(offset) || offset < 0) {
    throw new ApiError('InvalidPaginationToken', `The pagination token ${token} is invalid.`);
  }
  const end = offset + size;
  return { items: items.slice(offset, end), nextToken: end < items.length ? String(end) : undefined };
}
