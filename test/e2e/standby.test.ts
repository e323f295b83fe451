import {
  AutoScalingClient,
  DescribeAutoScalingGroupsCommand,
  DescribeScalingActivitiesCommand,
  EnterStandbyCommand,
  type EnterStandbyCommandInput,
  ExitStandbyCommand,
} from '@aws-sdk/client-auto-scaling';
import { LAUNCH_DETAIL_TYPE } from '../../functions/shared/event-patterns';
import { ControlPlane } from '../../scripts/local/control-plane/control-plane';
import { planeClientConfig } from './support';

// Standby as a zero-downtime deploy uses it, through the unmodified Auto Scaling client.
jest.setTimeout(30_000);

let plane: ControlPlane;
let asg: AutoScalingClient;

beforeEach(async () => {
  plane = await ControlPlane.start({ timeScale: 100 });
  asg = new AutoScalingClient(planeClientConfig(plane));
});

afterEach(async () => {
  asg.destroy();
  await plane.close();
});

/** A group of `desired` instances, all InService; their ids. */
function group(minSize: number, maxSize: number, desired: number): string[] {
  plane.autoScaling.createGroup({ name: 'web', minSize, maxSize, desiredCapacity: desired });
  return [...plane.autoScaling.group('web').instances.keys()];
}

const state = (id: string) => plane.autoScaling.instance(id)?.state;
const desired = () => plane.autoScaling.group('web').desiredCapacity;

async function until(what: string, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function failure(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return 'ok';
  } catch (error) {
    return `${(error as Error).name}: ${(error as Error).message}`;
  }
}

const enter = (input: Partial<EnterStandbyCommandInput>) =>
  asg.send(new EnterStandbyCommand({ AutoScalingGroupName: 'web', ...input } as EnterStandbyCommandInput));

describe('Standby in the local Auto Scaling', () => {
  it('moves InService instances to Standby through EnteringStandby, decrementing the desired capacity', async () => {
    const [a, b] = group(1, 4, 3) as [string, string];

    const { Activities } = await enter({ InstanceIds: [a, b], ShouldDecrementDesiredCapacity: true });
    const entering = [state(a), state(b)];
    await until('Standby', () => state(a) === 'Standby' && state(b) === 'Standby');
    const { AutoScalingGroups } = await asg.send(new DescribeAutoScalingGroupsCommand({}));

    expect(entering).toEqual(['EnteringStandby', 'EnteringStandby']);
    expect(desired()).toBe(1);
    expect(Activities?.map((x) => x.Description)).toEqual([
      `Moving EC2 instance to Standby: ${a}`,
      `Moving EC2 instance to Standby: ${b}`,
    ]);
    expect(Activities?.[0]?.Cause).toMatch(
      new RegExp(
        `instance ${a} was moved to standby in response to a user request, shrinking the capacity from 3 to 1\\.$`,
      ),
    );
    // Still in the group, not in its capacity: nothing launched, nothing terminated.
    expect(AutoScalingGroups?.[0]?.Instances?.map((i) => i.LifecycleState).sort()).toEqual([
      'InService',
      'Standby',
      'Standby',
    ]);
  });

  it('refuses to go below MinSize with a decrement, in AWS’s words, and changes nothing', async () => {
    const [a] = group(1, 3, 1) as [string];

    const refused = await failure(enter({ InstanceIds: [a], ShouldDecrementDesiredCapacity: true }));

    expect(refused).toBe(
      'ValidationError: AutoScalingGroup web has min-size=1, max-size=3, and desired-size=1. To place into standby 1 instance, please update the AutoScalingGroup sizes appropriately.',
    );
    expect(state(a)).toBe('InService');
    expect(desired()).toBe(1);
  });

  it('launches a replacement for an instance put on standby without a decrement', async () => {
    const [a] = group(1, 3, 1) as [string];

    await enter({ InstanceIds: [a], ShouldDecrementDesiredCapacity: false });
    const instances = [...plane.autoScaling.group('web').instances.values()];

    expect(desired()).toBe(1);
    expect(instances).toHaveLength(2);
    expect(instances.find((i) => i.id !== a)?.state).toBe('InService');
  });

  it('returns instances through Pending to InService, incrementing the desired capacity, without a launch hook', async () => {
    plane.autoScaling.createGroup({
      name: 'web',
      minSize: 0,
      maxSize: 3,
      desiredCapacity: 2,
      hook: { name: 'deploy', heartbeatTimeout: 600 },
    });
    const ids = [...plane.autoScaling.group('web').instances.keys()];
    for (const id of ids) {
      plane.autoScaling.completeLifecycleAction(
        { groupName: 'web', hookName: 'deploy', instanceId: id },
        'CONTINUE',
      );
    }
    const [a] = ids as [string];
    await enter({ InstanceIds: [a], ShouldDecrementDesiredCapacity: true });
    await until('Standby', () => state(a) === 'Standby');
    const launchEvents = () =>
      plane.bus.published.filter((e) => e['detail-type'] === LAUNCH_DETAIL_TYPE).length;
    const launchesBefore = launchEvents();

    const { Activities } = await asg.send(
      new ExitStandbyCommand({ AutoScalingGroupName: 'web', InstanceIds: [a] }),
    );
    const pending = state(a);
    await until('InService', () => state(a) === 'InService');
    const described = await asg.send(
      new DescribeScalingActivitiesCommand({
        AutoScalingGroupName: 'web',
        ActivityIds: [Activities?.[0]?.ActivityId ?? ''],
      }),
    );

    expect(pending).toBe('Pending');
    expect(desired()).toBe(2);
    expect(Activities?.[0]).toMatchObject({
      Description: `Moving EC2 instance out of Standby: ${a}`,
      Progress: 30,
      StatusCode: 'InProgress',
    });
    expect(described.Activities?.[0]).toMatchObject({ StatusCode: 'Successful', Progress: 100 });
    expect(launchEvents()).toBe(launchesBefore);
  });

  it('refuses ExitStandby above MaxSize, and instances not in the state each call needs', async () => {
    const [a, b] = group(0, 2, 2) as [string, string];
    await enter({ InstanceIds: [a], ShouldDecrementDesiredCapacity: false });
    await until('Standby', () => state(a) === 'Standby');

    const aboveMax = await failure(
      asg.send(new ExitStandbyCommand({ AutoScalingGroupName: 'web', InstanceIds: [a] })),
    );
    const notStandby = await failure(
      asg.send(new ExitStandbyCommand({ AutoScalingGroupName: 'web', InstanceIds: [b] })),
    );
    const notInService = await failure(enter({ InstanceIds: [a], ShouldDecrementDesiredCapacity: true }));
    const foreign = await failure(
      enter({ InstanceIds: ['i-0123456789abcdef0'], ShouldDecrementDesiredCapacity: true }),
    );

    expect(aboveMax).toBe(
      'ValidationError: AutoScalingGroup web has min-size=0, max-size=2, and desired-size=2. To exit standby 1 instance, please update the AutoScalingGroup sizes appropriately.',
    );
    expect(notStandby).toBe(`ValidationError: The instance ${b} is not in Standby.`);
    expect(notInService).toBe(`ValidationError: The instance ${a} is not in InService.`);
    expect(foreign).toBe(
      'ValidationError: The instance i-0123456789abcdef0 is not part of Auto Scaling group web.',
    );
  });

  it('takes at most 20 instances a call, and requires ShouldDecrementDesiredCapacity', async () => {
    group(0, 30, 21);
    const ids = [...plane.autoScaling.group('web').instances.keys()];

    const tooMany = await failure(enter({ InstanceIds: ids, ShouldDecrementDesiredCapacity: true }));
    const twenty = await failure(
      enter({ InstanceIds: ids.slice(0, 20), ShouldDecrementDesiredCapacity: true }),
    );
    const noDecrement = await failure(enter({ InstanceIds: ids.slice(20) }));

    expect(tooMany).toBe(
      "ValidationError: 1 validation error detected: Value at 'instanceIds' failed to satisfy constraint: Member must have length less than or equal to 20",
    );
    expect(twenty).toBe('ok');
    expect(noDecrement).toBe(
      "ValidationError: 1 validation error detected: Value null at 'shouldDecrementDesiredCapacity' failed to satisfy constraint: Member must not be null",
    );
  });

  it('leaves standby instances out of scale-in', async () => {
    const [a] = group(0, 3, 3) as [string];
    await enter({ InstanceIds: [a], ShouldDecrementDesiredCapacity: true });

    plane.autoScaling.setDesiredCapacity('web', 0);

    expect([...plane.autoScaling.group('web').instances.keys()]).toEqual([a]);
  });
});
