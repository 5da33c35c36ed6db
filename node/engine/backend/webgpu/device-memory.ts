// Every buffer the backend holds on the device, counted: the backend's memoryBytes and its close() come from here.
import type { WeightMatrix } from "../../model/weights.ts";
import { storageBuffer, uploadMatrix, type DeviceMatrix } from "./tensors.ts";

export class DeviceMemory {
  readonly device: GPUDevice;
  /** The largest storage binding the device allows: a buffer above it cannot be bound whole. */
  readonly maxBinding: number;
  /** Store float32 weight matrices as f16 (other formats stay as the file has them). */
  readonly f16: boolean;
  #buffers: GPUBuffer[] = [];
  #bytes = 0;
  #weightBytes = 0;

  constructor(device: GPUDevice, maxBinding: number, f16: boolean) {
    this.device = device;
    this.maxBinding = maxBinding;
    this.f16 = f16;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Bytes of the model's weights among them (matrices in their formats, and the weight vectors). */
  get weightBytes(): number {
    return this.#weightBytes;
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

  /** A float32 vector of the model's weights (a norm, a bias). */
  weightVector(label: string, data: Float32Array): GPUBuffer {
    const buffer = this.buffer(label, data.byteLength, data);
    this.#weightBytes += buffer.size;
    return buffer;
  }

  /** A weight matrix (several stacked parts) in its file's formats, split under the binding limit. */
  matrix(label: string, parts: readonly WeightMatrix[]): DeviceMatrix {
    const m = uploadMatrix(this.device, label, parts, { maxBinding: this.maxBinding, f16: this.f16 });
    for (const c of m.chunks) this.#keep(c.buffer);
    this.#weightBytes += m.bytes;
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
