import { ApiError } from './api-error';
import type { AutoScaling } from './auto-scaling';
import type { Clock } from './clock';

/** EC2's instance states, with the codes DescribeInstances reports them by. */
export const INSTANCE_STATES = { pending: 0, running: 16, stopped: 80, terminated: 48 } as const;
export type InstanceState = keyof typeof INSTANCE_STATES;

/** One EC2 instance as EC2 sees it: its state and its tags. */
export interface Ec2Instance {
  readonly id: string;
  readonly availabilityZone: string;
  readonly launchedAt: number;
  /** When EC2's reads (and CreateTags) first see it (eventual consistency after a launch). */
  readonly visibleAt: number;
  state: InstanceState;
  /** Tags by key, in the order they were first set. */
  readonly tags: Map<string, string>;
}

/** A tag with the resource it is on, as DescribeTags lists it. */
export interface ResourceTag {
  readonly resourceId: string;
  readonly resourceType: 'instance';
  readonly key: string;
  readonly value: string;
}

/** EC2's limits on user tags. */
const TAG_LIMITS = { key: 128, value: 256, perResource: 50 } as const;

/** The tag Auto Scaling puts on every instance it launches. */
export const GROUP_NAME_TAG = 'aws:autoscaling:groupName';

/**
 * EC2 as selfdeploy sees it: the instances of the Auto Scaling model (each one an EC2
 * instance from its launch, tagged `aws:autoscaling:groupName` and its group's tags), their
 * states, and the tags on them. Like EC2, an instance just launched is not yet known to every
 * read for a moment (`visibilitySeconds`); a terminated one stays listed as `terminated`.
 */
export class Ec2 {
  readonly #instances = new Map<string, Ec2Instance>();

  public constructor(
    autoScaling: AutoScaling,
    private readonly clock: Clock,
    /** Simulated seconds after a launch during which EC2's reads do not know the instance yet. */
    private readonly visibilitySeconds = 1,
  ) {
    autoScaling.onChange((change) => {
      const { instance } = change;
      if (change.kind === 'launched') {
        const group = autoScaling.group(instance.groupName);
        const now = Date.now();
        this.#instances.set(instance.id, {
          id: instance.id,
          availabilityZone: instance.availabilityZone,
          launchedAt: now,
          visibleAt: now + this.clock.realMs(this.visibilitySeconds),
          state: 'running',
          // Tags with PropagateAtLaunch, and the group's name that Auto Scaling adds.
          tags: new Map([...Object.entries(group.tags), [GROUP_NAME_TAG, group.name]]),
        });
      }
      const known = this.#instances.get(instance.id);
      if (!known) return;
      if (change.kind === 'started') known.state = 'running';
      if (change.kind === 'stopped') known.state = 'stopped';
      if (change.kind === 'terminated') known.state = 'terminated';
    });
  }

  /** The instances EC2's reads see now, in launch order. */
  public instances(): Ec2Instance[] {
    return [...this.#instances.values()].filter((instance) => this.#visible(instance));
  }

  /** The instances named, each checked as EC2 checks ids: malformed, then unknown, every one named. */
  public named(ids: readonly string[]): Ec2Instance[] {
    const malformed = ids.filter((id) => !/^i-[0-9a-f]{8}([0-9a-f]{9})?$/.test(id));
    if (malformed.length > 0) {
      throw new ApiError('InvalidInstanceID.Malformed', `Invalid id: "${malformed[0]}"`);
    }
    const unknown = ids.filter((id) => {
      const instance = this.#instances.get(id);
      return instance === undefined || !this.#visible(instance);
    });
    if (unknown.length === 1) {
      throw new ApiError('InvalidInstanceID.NotFound', `The instance ID '${unknown[0]}' does not exist`);
    }
    if (unknown.length > 1) {
      throw new ApiError(
        'InvalidInstanceID.NotFound',
        `The instance IDs '${unknown.join(', ')}' do not exist`,
      );
    }
    return ids.map((id) => this.#instances.get(id) as Ec2Instance);
  }

  /**
   * CreateTags: adds or overwrites the tags on every resource, all or nothing. Keys that
   * start with `aws:` are AWS's own.
   */
  public createTags(resourceIds: readonly string[], tags: readonly { key: string; value: string }[]): void {
    if (resourceIds.length === 0) throw missingParameter('ResourceId');
    if (tags.length === 0) throw missingParameter('Tag');
    for (const { key, value } of tags) {
      if (key === '' || key.length > TAG_LIMITS.key) {
        throw new ApiError(
          'InvalidParameterValue',
          `Tag key must be between 1 and ${TAG_LIMITS.key} characters long, got ${key.length}`,
        );
      }
      if (key.toLowerCase().startsWith('aws:')) {
        throw new ApiError(
          'InvalidParameterValue',
          `Value ( ${key} ) for parameter key is invalid. Tag keys starting with 'aws:' are reserved for internal use`,
        );
      }
      if (value.length > TAG_LIMITS.value) {
        throw new ApiError(
          'InvalidParameterValue',
          `Tag value exceeds the maximum length of ${TAG_LIMITS.value} characters`,
        );
      }
    }
    const instances = this.named(resourceIds);
    for (const instance of instances) {
      const userKeys = new Set(
        [...instance.tags.keys(), ...tags.map((t) => t.key)].filter((k) => !k.startsWith('aws:')),
      );
      if (userKeys.size > TAG_LIMITS.perResource) {
        throw new ApiError(
          'TagLimitExceeded',
          `The maximum number of Tags for a resource has been reached. Resource ${instance.id} has ${userKeys.size} tags, the limit is ${TAG_LIMITS.perResource}`,
        );
      }
    }
    for (const instance of instances) {
      for (const { key, value } of tags) instance.tags.set(key, value);
    }
  }

  /** Every tag on every instance the reads see, resource by resource. */
  public tags(): ResourceTag[] {
    return this.instances().flatMap((instance) =>
      [...instance.tags].map(([key, value]) => ({
        resourceId: instance.id,
        resourceType: 'instance' as const,
        key,
        value,
      })),
    );
  }

  #visible(instance: Ec2Instance): boolean {
    return Date.now() >= instance.visibleAt;
  }
}

function missingParameter(name: string): ApiError {
  return new ApiError('MissingParameter', `The request must contain the parameter ${name}`);
}
