// Every buffer the backend holds on the device, counted: the backend's memoryBytes and its close() come from here.
import { storageBuffer, uploadMatrix, type DeviceMatrix } from "./tensors.ts";

export class DeviceMemory {
  readonly device: GPUDevice;
  /** The largest storage binding the device allows: a buffer above it cannot be bound whole. */
  readonly maxBinding: number;
  /** Store weight matrices as f16. */
  readonly f16: boolean;
  #buffers: GPUBuffer[] = [];
  #bytes = 0;

  constructor(device: GPUDevice, maxBinding: number, f16: boolean) {
    this.device = device;
    this.maxBinding = maxBinding;
    this.f16 = f16;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** A zero-filled storage buffer (optionally initialized); throws when it could not be bound whole. */
  buffer(label: string, bytes: number, data?: ArrayBufferView): GPUBuffer {
    if (bytes > this.maxBinding) {
      throw new RangeError(
        `webgpu: ${label} needs ${bytes} bytes in one binding, the device allows ${this.maxBinding}`,
      );
    }
    return this.#keep(storageBuffer(this.device, label, bytes, data));
  }

  /** A weight matrix (several stacked parts), rows padded to vec4 and split under the binding limit. */
  matrix(label: string, parts: Float32Array[], cols: number): DeviceMatrix {
    const m = uploadMatrix(this.device, label, parts, cols, this.f16, this.maxBinding);
    for (const c of m.chunks) this.#keep(c.buffer);
    return m;
  }

  /** Counts bytes held outside buffers made here (the parameter arena). */
  count(bytes: number): void {
    this.#bytes += bytes;
  }

  destroy(): void {
    for (const b of this.#buffers) b.destroy();
    this.#buffers = [];
  }

  #keep(buffer: GPUBuffer): GPUBuffer {
    this.#buffers.push(buffer);
    this.#bytes += buffer.size;
    return buffer;
  }
}
