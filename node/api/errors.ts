// Errors of the HTTP API and their one wire shape, OpenAI's: { error: { message, type, param, code } }, so that
// existing clients (the official `openai` package among them) raise them as their usual APIError subclasses.
import { EngineBusyError, InvalidRequestError, OpenLoraError, type Blame } from "../engine/index.ts";

/** An error the API answers with a given HTTP status; `extra` fields join the error object (402's amount). */
export class ApiError extends OpenLoraError {
  override name = "ApiError";
  readonly status: number;
  readonly param: string | null;
  readonly extra: Record<string, unknown>;
  readonly headers: Record<string, string>;
  constructor(
    status: number,
    code: string,
    message: string,
    options: {
      param?: string | null;
      extra?: Record<string, unknown>;
      blame?: Blame;
      headers?: Record<string, string>;
    } = {},
  ) {
    super(code, message, { blame: options.blame ?? (status < 500 ? "caller" : "node") });
    this.status = status;
    this.param = options.param ?? null;
    this.extra = options.extra ?? {};
    this.headers = options.headers ?? {};
  }
}

/** A request field that is missing, mistyped or out of range: 400 naming the field. */
export function badParam(param: string, problem: string): ApiError {
  return new ApiError(400, "invalid_request", `${param} ${problem}`, { param });
}

export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null; [extra: string]: unknown };
}

/** OpenAI's error `type` for a status. */
function typeOf(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 402) return "payment_required";
  if (status === 403) return "permission_error";
  if (status === 404) return "not_found_error";
  if (status === 429) return "rate_limit_error";
  if (status >= 500) return "server_error";
  return "invalid_request_error";
}

/** The engine names fields by its own request's names: the API's names for them. */
const ENGINE_FIELDS: Record<string, string> = { tokenIds: "prompt", adapter: "model", request: "body" };

/** Fastify's and Node's own errors that carry a status (body too large, bad JSON, wrong content type). */
interface StatusError extends Error {
  statusCode?: number;
  code?: string;
}

/**
 * Any error as a status and body. Errors the node raises on purpose carry their status (ApiError) or their blame
 * (blame "caller" is 400); framework errors keep their 4xx status; anything else is a 500 whose details stay in
 * the log, not in the answer.
 */
export function errorResponse(error: unknown): {
  status: number;
  body: OpenAiErrorBody;
  headers: Record<string, string>;
} {
  const body = (
    status: number,
    code: string | null,
    message: string,
    param: string | null = null,
  ): OpenAiErrorBody => ({
    error: { message, type: typeOf(status), param, code },
  });
  if (error instanceof ApiError) {
    const b = body(error.status, error.code, error.message, error.param);
    Object.assign(b.error, error.extra);
    return { status: error.status, body: b, headers: error.headers };
  }
  if (error instanceof EngineBusyError) {
    // The engine holds all the work it accepts (or this owner's share): 429 with when to retry, in seconds.
    const headers = { "retry-after": String(Math.ceil(error.retryAfterMs / 1000)) };
    return { status: 429, body: body(429, error.code, error.message), headers };
  }
  if (error instanceof OpenLoraError && error.blame === "caller") {
    const field = error instanceof InvalidRequestError ? error.field : null;
    const param = field === null ? null : (ENGINE_FIELDS[field] ?? field);
    return { status: 400, body: body(400, error.code, error.message, param), headers: {} };
  }
  const status = (error as StatusError)?.statusCode;
  if (typeof status === "number" && status >= 400 && status < 500) {
    const code = (error as StatusError).code ?? null;
    return { status, body: body(status, frameworkCode(status, code), (error as Error).message), headers: {} };
  }
  const code = error instanceof OpenLoraError ? error.code : "internal_error";
  return {
    status: 500,
    body: body(500, code, "the node failed to serve this request; its log has the details"),
    headers: {},
  };
}

/** Stable codes for the framework's client errors (its own codes are implementation names). */
function frameworkCode(status: number, code: string | null): string {
  if (status === 413) return "body_too_large";
  if (status === 415) return "unsupported_media_type";
  if (code === "FST_ERR_CTP_EMPTY_JSON_BODY") return "empty_body";
  if (code?.startsWith("FST_ERR_CTP")) return "invalid_json";
  return "invalid_request";
}
