// A minimal typed event emitter: the engine and the p2p parts report what happened (requests finished, adapters
// loaded, announcements accepted or dropped, peers expiring) to whoever listens (ledger, announcer, metrics, logs,
// tests) without knowing who that is.

type Listener<T> = (value: T) => void;

export class Emitter<Events extends object> {
  #listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Subscribes; returns the function that unsubscribes. */
  on<K extends keyof Events>(name: K, listener: Listener<Events[K]>): () => void {
    let set = this.#listeners.get(name);
    if (!set) this.#listeners.set(name, (set = new Set()));
    set.add(listener as Listener<never>);
    return () => {
      set.delete(listener as Listener<never>);
    };
  }

  /** Resolves with the next event of that name for which `match` holds (tests, start-up waits). */
  once<K extends keyof Events>(
    name: K,
    match: (value: Events[K]) => boolean = () => true,
    signal?: AbortSignal,
  ): Promise<Events[K]> {
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        off();
        reject(signal!.reason);
      };
      const off = this.on(name, (value) => {
        if (!match(value)) return;
        off();
        signal?.removeEventListener("abort", onAbort);
        resolve(value);
      });
      if (signal) {
        if (signal.aborted) onAbort();
        else signal.addEventListener("abort", onAbort, { once: true });
      }
    });
  }

  protected emit<K extends keyof Events>(name: K, value: Events[K]): void {
    const set = this.#listeners.get(name);
    if (!set) return;
    for (const listener of [...set]) {
      // A failing listener must not break the code that reports the event (the step loop, the network).
      try {
        (listener as Listener<Events[K]>)(value);
      } catch (error) {
        console.error(`a listener of "${String(name)}" failed:`, error);
      }
    }
  }
}
