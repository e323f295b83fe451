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

/** An error as the Node.js runtime reports it: its name, message and stack lines. */
export interface FunctionError {
  readonly name: string;
  readonly message: string;
  /** The stack, one line per element (Lambda's `trace`). */
  readonly trace?: readonly string[];
}

/** What a worker reports back. `log` is what the invocation wrote (its START … REPORT lines). */
export type WorkerMessage =
  | { readonly kind: 'ready'; readonly environment: string; readonly initMs: number }
  | {
      readonly kind: 'init-failed';
      readonly environment: string;
      readonly error: FunctionError;
    }
  | {
      readonly kind: 'result';
      readonly id: number;
      readonly requestId: string;
      readonly result: unknown;
      readonly log: string;
    }
  | {
      readonly kind: 'error';
      readonly id: number;
      readonly requestId: string;
      readonly error: FunctionError;
      readonly log: string;
    };
