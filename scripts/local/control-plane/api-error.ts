/**
 * An error answered to an API caller in the protocol's own error shape. `code` is what
 * the SDK turns into `err.name` (e.g. `ValidationError`, `InvalidInstanceId`).
 */
export class ApiError extends Error {
  public constructor(
    public readonly code: string,
    message: string,
    public readonly status = 400,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  /** awsQuery's `<Type>`: the caller's fault below 500, the service's above. */
  public get fault(): 'Sender' | 'Receiver' {
    return this.status >= 500 ? 'Receiver' : 'Sender';
  }
}
