// Positional reads for model files. Benchmark models are several GB: loaders read one tensor at a time at its
// offset instead of pulling the whole file into one Buffer (fs.readFileSync stops at 2 GiB anyway).
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { ModelFormatError } from "../errors.ts";

/** Largest single readSync: Node refuses lengths above 2^31-1, and smaller reads keep memory flat. */
const MAX_READ = 1 << 30;

/** Every binary format here is little-endian; a big-endian host would need byte swaps nobody tests. */
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** An open read-only file and its size. Close it with closeModelFile. */
export interface ModelFile {
  readonly path: string;
  readonly fd: number;
  readonly size: number;
}

/** Opens a model file; a missing or unreadable file becomes a ModelFormatError naming it. */
export function openModelFile(path: string): ModelFile {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (error) {
    throw new ModelFormatError(
      path,
      `cannot open: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  const stat = fstatSync(fd);
  if (!stat.isFile()) {
    closeSync(fd);
    throw new ModelFormatError(path, "not a regular file");
  }
  return { path, fd, size: stat.size };
}

export function closeModelFile(file: ModelFile): void {
  closeSync(file.fd);
}

/** Runs fn with the file open, closing it whatever happens. */
export function withModelFile<T>(path: string, fn: (file: ModelFile) => T): T {
  const file = openModelFile(path);
  try {
    return fn(file);
  } finally {
    closeModelFile(file);
  }
}

/**
 * Fills `into` from the file at `position`. `what` names the thing being read so that a short read says which
 * tensor the file was cut in.
 */
export function readInto(file: ModelFile, position: number, into: Uint8Array, what: string): void {
  if (position + into.length > file.size) {
    throw new ModelFormatError(
      file.path,
      `truncated: ${what} needs bytes ${position}..${position + into.length} but the file has ${file.size}`,
    );
  }
  let done = 0;
  while (done < into.length) {
    const length = Math.min(MAX_READ, into.length - done);
    const got = readSync(file.fd, into, done, length, position + done);
    if (got === 0) throw new ModelFormatError(file.path, `truncated: unexpected end of file reading ${what}`);
    done += got;
  }
}

/** Reads `length` bytes at `position`. */
export function readBytes(file: ModelFile, position: number, length: number, what: string): Uint8Array {
  const out = new Uint8Array(length);
  readInto(file, position, out, what);
  return out;
}

/** Reads `count` little-endian float32 values at `position` straight into a new Float32Array. */
export function readFloat32(file: ModelFile, position: number, count: number, what: string): Float32Array {
  if (!HOST_LITTLE_ENDIAN) throw new ModelFormatError(file.path, "big-endian hosts are not supported");
  const out = new Float32Array(count);
  readInto(file, position, new Uint8Array(out.buffer, 0, out.byteLength), what);
  return out;
}
