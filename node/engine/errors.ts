// Errors of the engine. Each names the file or input at fault and the problem, so an operator can act on it.

/** Whose input caused an error: the caller's request, a remote peer's data, or this node itself. */
export type Blame = "caller" | "peer" | "node";

/**
 * The base of every error the node raises on purpose: a stable `code` for programs (API error codes, wire
 * frames), a `blame` that says whose fault it was (so a server answers "bad request" or "internal" without a
 * list of classes), an optional `hint` of what to do about it, and the `cause` it wraps.
 */
export class OpenLoraError extends Error {
  override name = "OpenLoraError";
  readonly code: string;
  readonly blame: Blame;
  readonly hint: string | undefined;
  constructor(code: string, message: string, options: { blame?: Blame; hint?: string; cause?: unknown } = {}) {
    super(
      options.hint ? `${message} (${options.hint})` : message,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.code = code;
    this.blame = options.blame ?? "node";
    this.hint = options.hint;
  }
}

/** A model, tokenizer or tensor file that cannot be used: truncated, malformed, unknown dtype, wrong shape. */
export class ModelFormatError extends OpenLoraError {
  override name = "ModelFormatError";
  readonly file: string;
  readonly problem: string;
  constructor(file: string, problem: string) {
    super("model_format", `${file}: ${problem}`, { blame: "caller" });
    this.file = file;
    this.problem = problem;
  }
}

/** A LoRA adapter that cannot be applied to the loaded model. */
export class AdapterError extends OpenLoraError {
  override name = "AdapterError";
  readonly source: string;
  readonly problem: string;
  constructor(source: string, problem: string) {
    super("adapter_invalid", `adapter ${source}: ${problem}`, { blame: "caller" });
    this.source = source;
    this.problem = problem;
  }
}

/** A generation request with values out of range (sampling parameters, lengths, unknown adapter). */
export class InvalidRequestError extends OpenLoraError {
  override name = "InvalidRequestError";
  readonly field: string;
  constructor(field: string, problem: string) {
    super("invalid_request", `invalid request: ${field} ${problem}`, { blame: "caller" });
    this.field = field;
  }
}

/** An engine option the model or this machine cannot serve (a context longer than the model's, say). */
export class InvalidOptionError extends OpenLoraError {
  override name = "InvalidOptionError";
  readonly option: string;
  constructor(option: string, problem: string, hint?: string) {
    super("invalid_option", `${option}: ${problem}`, { blame: "caller", hint });
    this.option = option;
  }
}

/**
 * The engine holds as much work as it accepts (in total, or from this request's owner): try again later. Nobody's
 * fault: an HTTP API answers 429 with a Retry-After of `retryAfterMs`, the infer protocol its "busy" code.
 */
export class EngineBusyError extends OpenLoraError {
  override name = "EngineBusyError";
  /** About when the work held now will have drained enough to make room, at the recent rate. */
  readonly retryAfterMs: number;
  constructor(message: string, retryAfterMs: number) {
    super("busy", message, { blame: "node", hint: `retry in ${Math.ceil(retryAfterMs / 1000)} s` });
    this.retryAfterMs = retryAfterMs;
  }
}
