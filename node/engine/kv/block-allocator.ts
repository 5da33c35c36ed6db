/**
 * The free list of a paged KV pool: blocks are handed out and returned by id. A sequence's block table is the
 * list of ids it holds, in position order. Allocation is all-or-nothing, so a failed request leaves no leak.
 */
export class BlockAllocator {
  readonly numBlocks: number;
  readonly blockSize: number;
  #free: number[];

  constructor(numBlocks: number, blockSize: number) {
    if (!Number.isInteger(numBlocks) || numBlocks <= 0)
      throw new RangeError(`numBlocks must be a positive integer, got ${numBlocks}`);
    if (!Number.isInteger(blockSize) || blockSize <= 0)
      throw new RangeError(`blockSize must be a positive integer, got ${blockSize}`);
    this.numBlocks = numBlocks;
    this.blockSize = blockSize;
    // Pop from the end: low ids first, which keeps tests and dumps readable.
    this.#free = Array.from({ length: numBlocks }, (_, i) => numBlocks - 1 - i);
  }

  get freeBlocks(): number {
    return this.#free.length;
  }

  /** Blocks needed to hold `positions` positions. */
  blocksFor(positions: number): number {
    return Math.ceil(positions / this.blockSize);
  }

  /** Grows a block table to cover `positions` positions; false (and nothing taken) when the pool is short. */
  grow(table: number[], positions: number): boolean {
    const missing = this.blocksFor(positions) - table.length;
    if (missing <= 0) return true;
    if (missing > this.#free.length) return false;
    for (let i = 0; i < missing; i++) table.push(this.#free.pop()!);
    return true;
  }

  /** Returns every block of a table to the pool and empties the table. */
  release(table: number[]): void {
    this.#free.push(...table.reverse());
    table.length = 0;
  }
}
