import {
  CreateTagsCommand,
  DescribeInstancesCommand,
  DescribeTagsCommand,
  EC2Client,
  type Filter,
  type Tag,
} from '@aws-sdk/client-ec2';
import { ControlPlane } from '../../scripts/local/control-plane/control-plane';
import { planeClientConfig } from './support';

// EC2's tags and instances as selfdeploy uses them, through the unmodified SDK client.
jest.setTimeout(30_000);

let plane: ControlPlane;
let ec2: EC2Client;

/** Simulated seconds after a launch during which EC2 does not know the instance yet (0.5 s real). */
const VISIBILITY_SECONDS = 50;

beforeEach(async () => {
  plane = await ControlPlane.start({ timeScale: 100, instanceVisibilitySeconds: VISIBILITY_SECONDS });
  ec2 = new EC2Client(planeClientConfig(plane));
});

afterEach(async () => {
  ec2.destroy();
  await plane.close();
});

/** A group of `count` instances, with a tag that propagates at launch; their ids once EC2 knows them. */
async function group(name: string, count: number): Promise<string[]> {
  plane.autoScaling.createGroup({ name, maxSize: 10, desiredCapacity: count, tags: { team: 'web-team' } });
  await new Promise((resolve) => setTimeout(resolve, plane.clock.realMs(VISIBILITY_SECONDS) + 50));
  return [...plane.autoScaling.group(name).instances.keys()];
}

async function failure(call: Promise<unknown>): Promise<{ name: string; message: string; status?: number }> {
  try {
    await call;
    return { name: 'ok', message: '' };
  } catch (error) {
    const e = error as Error & { $metadata?: { httpStatusCode?: number } };
    return { name: e.name, message: e.message, status: e.$metadata?.httpStatusCode };
  }
}

function tagsOf(tags: Tag[] | undefined): Record<string, string> {
  return Object.fromEntries((tags ?? []).map((t) => [t.Key ?? '', t.Value ?? '']));
}

describe('EC2 in the local control plane', () => {
  it('knows the Auto Scaling instances from their launch, tagged with their group', async () => {
    const ids = await group('web', 2);

    const { Reservations } = await ec2.send(
      new DescribeInstancesCommand({ Filters: [{ Name: 'tag:aws:autoscaling:groupName', Values: ['web'] }] }),
    );
    const instances = (Reservations ?? []).flatMap((r) => r.Instances ?? []);

    expect(instances.map((i) => i.InstanceId).sort()).toEqual([...ids].sort());
    for (const instance of instances) {
      expect(instance.State).toEqual({ Code: 16, Name: 'running' });
      expect(tagsOf(instance.Tags)).toEqual({ 'aws:autoscaling:groupName': 'web', team: 'web-team' });
    }
  });

  it('tags several instances with several tags at once, and DescribeTags lists them by filter', async () => {
    const ids = await group('web', 3);
    const [first, second, third] = ids as [string, string, string];

    await ec2.send(
      new CreateTagsCommand({
        Resources: [first, second],
        Tags: [
          { Key: 'selfdeploy:revision', Value: 'a'.repeat(40) },
          { Key: 'selfdeploy:last-deploy', Value: '' },
        ],
      }),
    );
    await ec2.send(
      new CreateTagsCommand({
        Resources: [first],
        Tags: [{ Key: 'selfdeploy:revision', Value: 'b'.repeat(40) }],
      }),
    );
    const describe = async (Filters: Filter[]) =>
      ((await ec2.send(new DescribeTagsCommand({ Filters }))).Tags ?? []).map((t) => [
        t.ResourceId,
        t.ResourceType,
        t.Key,
        t.Value,
      ]);

    expect(await describe([{ Name: 'key', Values: ['selfdeploy:revision'] }])).toEqual([
      [first, 'instance', 'selfdeploy:revision', 'b'.repeat(40)],
      [second, 'instance', 'selfdeploy:revision', 'a'.repeat(40)],
    ]);
    expect(
      await describe([
        { Name: 'resource-id', Values: [second, third] },
        { Name: 'resource-type', Values: ['instance'] },
        { Name: 'key', Values: ['selfdeploy:*'] },
      ]),
    ).toEqual([
      [second, 'instance', 'selfdeploy:revision', 'a'.repeat(40)],
      [second, 'instance', 'selfdeploy:last-deploy', ''],
    ]);
  });

  it('pages DescribeTags and DescribeInstances with MaxResults (5–1000) and NextToken', async () => {
    const ids = await group('web', 7);
    const pages: number[] = [];
    let NextToken: string | undefined;
    const seen: string[] = [];
    do {
      const page = await ec2.send(
        new DescribeTagsCommand({ Filters: [{ Name: 'key', Values: ['team'] }], MaxResults: 5, NextToken }),
      );
      pages.push(page.Tags?.length ?? 0);
      seen.push(...(page.Tags ?? []).map((t) => t.ResourceId ?? ''));
      NextToken = page.NextToken;
    } while (NextToken);
    const instancesPage = await ec2.send(new DescribeInstancesCommand({ MaxResults: 5 }));

    expect(pages).toEqual([5, 2]);
    expect(seen.sort()).toEqual([...ids].sort());
    expect(instancesPage.Reservations).toHaveLength(5);
    expect(instancesPage.NextToken).toBeDefined();
    expect(await failure(ec2.send(new DescribeTagsCommand({ MaxResults: 4 })))).toMatchObject({
      name: 'InvalidParameterValue',
      status: 400,
    });
    expect(
      await failure(
        ec2.send(new DescribeInstancesCommand({ InstanceIds: [ids[0] as string], MaxResults: 5 })),
      ),
    ).toMatchObject({ name: 'InvalidParameterCombination' });
    expect(await failure(ec2.send(new DescribeTagsCommand({ NextToken: 'nope' })))).toMatchObject({
      name: 'InvalidPaginationToken',
    });
  });

  it('refuses tags EC2 refuses, all or nothing: aws: keys, long keys and values, unknown and malformed ids', async () => {
    const [id] = (await group('web', 1)) as [string];
    const tag = (Key: string, Value = 'v') => [{ Key, Value }];
    const create = (Resources: string[], Tags: Tag[]) =>
      failure(ec2.send(new CreateTagsCommand({ Resources, Tags })));

    const reserved = await create([id], tag('aws:mine'));
    const longKey = await create([id], tag('k'.repeat(129)));
    const longValue = await create([id], tag('k', 'v'.repeat(257)));
    const unknown = await create([id, 'i-0123456789abcdef0', 'i-0fedcba9876543210'], tag('k'));
    const malformed = await create(['web-1'], tag('k'));
    const limits = await create([id], [...tag('k'.repeat(128), 'v'.repeat(256))]);
    const { Reservations } = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [id] }));

    expect(reserved).toEqual({
      name: 'InvalidParameterValue',
      status: 400,
      message:
        "Value ( aws:mine ) for parameter key is invalid. Tag keys starting with 'aws:' are reserved for internal use",
    });
    expect(longKey).toMatchObject({ name: 'InvalidParameterValue' });
    expect(longValue).toMatchObject({ name: 'InvalidParameterValue' });
    expect(unknown).toMatchObject({
      name: 'InvalidInstanceID.NotFound',
      message: "The instance IDs 'i-0123456789abcdef0, i-0fedcba9876543210' do not exist",
    });
    expect(malformed).toMatchObject({ name: 'InvalidInstanceID.Malformed', message: 'Invalid id: "web-1"' });
    expect(limits).toMatchObject({ name: 'ok' });
    // The refused calls left nothing behind, not even on the instance that exists.
    expect(Object.keys(tagsOf(Reservations?.[0]?.Instances?.[0]?.Tags)).sort()).toEqual(
      ['aws:autoscaling:groupName', 'k'.repeat(128), 'team'].sort(),
    );
  });

  it('does not know an instance for a moment after its launch, as EC2’s eventual consistency', async () => {
    plane.autoScaling.createGroup({ name: 'web', maxSize: 1, desiredCapacity: 1 });
    const id = plane.autoScaling.instances()[0]?.id as string;

    const early = await failure(
      ec2.send(new CreateTagsCommand({ Resources: [id], Tags: [{ Key: 'k', Value: 'v' }] })),
    );
    await new Promise((resolve) => setTimeout(resolve, plane.clock.realMs(VISIBILITY_SECONDS) + 50));
    const later = await failure(
      ec2.send(new CreateTagsCommand({ Resources: [id], Tags: [{ Key: 'k', Value: 'v' }] })),
    );

    expect(early).toMatchObject({
      name: 'InvalidInstanceID.NotFound',
      message: `The instance ID '${id}' does not exist`,
    });
    expect(later).toMatchObject({ name: 'ok' });
  });

  it('lists a terminated instance as terminated, with its tags', async () => {
    const ids = await group('web', 2);
    await ec2.send(
      new CreateTagsCommand({ Resources: ids, Tags: [{ Key: 'selfdeploy:revision', Value: 'c0ffee' }] }),
    );

    plane.autoScaling.setDesiredCapacity('web', 1);
    const { Reservations } = await ec2.send(new DescribeInstancesCommand({ InstanceIds: ids }));
    const states = (Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => i.State?.Name);

    expect(states.sort()).toEqual(['running', 'terminated']);
  });
});
