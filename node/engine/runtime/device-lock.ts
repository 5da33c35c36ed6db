/**
 * Serializes calls into the backend: a step and an adapter upload never interleave, so a slot is never
 * rewritten while a step that reads it is in flight.
 */
export class DeviceLock {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn);
    this.#tail = result.catch(() => {});
    return result;
  }
}
