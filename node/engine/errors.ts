// Errors of the engine. Each names the file or input at fault and the problem, so an operator can act on it.

/** A model, tokenizer or tensor file that cannot be used: truncated, malformed, unknown dtype, wrong shape. */
export class ModelFormatError extends Error {
  override name = "ModelFormatError";
  readonly file: string;
  readonly problem: string;
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.file = file;
    this.problem = problem;
  }
}

/** A LoRA adapter that cannot be applied to the loaded model. */
export class AdapterError extends Error {
  override name = "AdapterError";
  readonly source: string;
  readonly problem: string;
  constructor(source: string, problem: string) {
    super(`adapter ${source}: ${problem}`);
    this.source = source;
    this.problem = problem;
  }
}

/** A generation request with values out of range (sampling parameters, lengths, unknown adapter). */
export class InvalidRequestError extends Error {
  override name = "InvalidRequestError";
  readonly field: string;
  constructor(field: string, problem: string) {
    super(`invalid request: ${field} ${problem}`);
    this.field = field;
  }
}
