// The bundle's stand-in for @smithy/core/event-streams (infra/bundling.ts aliases it here).
// The SDK's protocols import event-stream support on demand, for operations that stream events;
// none of the Auto Scaling, SSM, SQS and EC2 operations the orchestrator calls does, so the real
// module would only be parsed at every cold start and never run.

const NOT_BUNDLED = 'event streams are not bundled: no operation the orchestrator calls uses one';

/** Stands in for the SDK's event-stream marshaller provider; never called. */
export function eventStreamSerdeProvider(): never {
  throw new Error(NOT_BUNDLED);
}

/** Stands in for the SDK's event-stream serializer; never constructed. */
export class EventStreamSerde {
  public constructor() {
    throw new Error(NOT_BUNDLED);
  }
}
