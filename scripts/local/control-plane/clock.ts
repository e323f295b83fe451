/**
 * Time for the simulation. AWS timeouts are minutes to hours; tests and demos cannot wait
 * that long, so every timer the control plane sets (heartbeat timeouts, agent
 * registration delays, retry delays) runs `scale` times faster than the seconds it is
 * given. Timestamps in replies and events stay wall-clock time.
 */
export class Clock {
  readonly #timers = new Set<NodeJS.Timeout>();

  /** @param scale how many simulated seconds pass per real second (1 = real time) */
  public constructor(public readonly scale = 1) {
    if (!(scale > 0)) throw new RangeError(`clock scale must be positive, got ${scale}`);
  }

  /** Real milliseconds that `seconds` of simulated time take. */
  public realMs(seconds: number): number {
    return (seconds * 1000) / this.scale;
  }

  /** Runs `fn` after `seconds` of simulated time; returns a function that cancels it. */
  public after(seconds: number, fn: () => void): () => void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      fn();
    }, this.realMs(seconds));
    this.#timers.add(timer);
    return () => {
      clearTimeout(timer);
      this.#timers.delete(timer);
    };
  }

  /** Resolves after `seconds` of simulated time. */
  public sleep(seconds: number): Promise<void> {
    return new Promise((resolve) => this.after(seconds, resolve));
  }

  /** Cancels every pending timer, so a stopped control plane leaves nothing running. */
  public stop(): void {
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
  }
}
