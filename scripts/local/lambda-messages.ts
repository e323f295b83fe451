/** An invocation sent to the worker; `deadline` is when the function times out (epoch ms). */
export interface HostMessage {
  readonly id: number;
  readonly event: unknown;
  readonly deadline: number;
}

/** What the worker reports back. */
export type WorkerMessage =
  | { readonly kind: 'ready' }
  | { readonly kind: 'init-failed'; readonly error: { name: string; message: string } }
  | { readonly kind: 'result'; readonly id: number; readonly requestId: string; readonly result: unknown }
  | {
      readonly kind: 'error';
      readonly id: number;
      readonly requestId: string;
      readonly error: { name: string; message: string };
    };
