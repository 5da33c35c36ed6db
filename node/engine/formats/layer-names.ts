// Tensor names carry layer indices; a model reader sizes nothing by them, but a name beyond the model's layers
// (layers.99999999) is refused by name from the header, before any weight is read or allocated.
import { ModelFormatError } from "../errors.ts";

/**
 * Throws, naming the tensor and `field` (the metadata that sets the layer count), when a name matching
 * `pattern` (its first group the layer index) has an index of `nLayers` or more.
 */
export function refuseLayersBeyond(
  names: Iterable<string>,
  pattern: RegExp,
  nLayers: number,
  file: string,
  field: string,
): void {
  for (const name of names) {
    const index = pattern.exec(name)?.[1];
    if (index !== undefined && Number(index) >= nLayers) {
      throw new ModelFormatError(file, `tensor ${name}: layer ${index} is out of range (${field} is ${nLayers})`);
    }
  }
}
