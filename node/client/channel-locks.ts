// This process's hold on each channel (node, listing): one voucher at a time is signed and sent, from reading the
// channel's state until the node accepts or refuses it, so concurrent requests never sign competing amounts; and
// the sum of the most that accepted requests still in flight may cost, which the node holds too (its "reserved")
// and which the next voucher must cover on top of what was consumed.
export class ChannelLocks {
  readonly #tails = new Map<string, Promise<void>>();
  readonly #inflight = new Map<string, bigint>();

  /** Waits for the channel's turn; call the returned function to pass it on. */
  async lock(key: string): Promise<() => void> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.#tails.set(key, tail);
    await previous;
    return () => {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    };
  }

  inflight(key: string): bigint {
    return this.#inflight.get(key) ?? 0n;
  }

  hold(key: string, amount: bigint): () => void {
    this.#inflight.set(key, this.inflight(key) + amount);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = this.inflight(key) - amount;
      if (left === 0n) this.#inflight.delete(key);
      else this.#inflight.set(key, left);
    };
  }
}

export function channelKey(node: string, listingId: string): string {
  return `${node.toLowerCase()}:${listingId.toLowerCase()}`;
}
