/** What the host sends a worker process: make an execution environment (a cold start), or run an invocation in one. */
export type HostMessage =
  | { readonly kind: 'create'; readonly environment: string }
  | {
      readonly kind: 'invoke';
      readonly id: number;
      readonly environment: string;
      readonly event: unknown;
      /** When the function times out (epoch ms). */
      readonly deadline: number;
    }
  | { readonly kind: 'dispose'; readonly environment: string };

/** What a worker reports back. */
export type WorkerMessage =
  | { readonly kind: 'ready'; readonly environment: string; readonly initMs: number }
  | {
      readonly kind: 'init-failed';
      readonly environment: string;
      readonly error: { name: string; message: string };
    }
  | { readonly kind: 'result'; readonly id: number; readonly requestId: string; readonly result: unknown }
  | {
      readonly kind: 'error';
      readonly id: number;
      readonly requestId: string;
      readonly error: { name: string; message: string };
    };
