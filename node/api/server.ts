// The HTTP server (fastify): routes, body limit, and one error shape for everything that goes wrong — a bad
// body, an unknown URL (404), a known URL with the wrong method (405, with Allow), a body over 1 MiB (413), a
// wrong content type (415), malformed HTTP (400/431 on the socket) — so that no input stops the node serving.
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import Fastify, { type FastifyInstance, type HTTPMethods } from "fastify";
import type { ApiContext } from "./context.ts";
import { ApiError, errorResponse } from "./errors.ts";
import { toJson } from "./json.ts";
import { errorFields } from "./log.ts";
import { adminRoutes } from "./routes/admin.ts";
import { inferenceRoutes, selfLogged } from "./routes/inference.ts";
import { modelRoutes } from "./routes/models.ts";
import { statusRoutes } from "./routes/status.ts";
import { statusPageRoutes } from "./routes/status-page.ts";

/** Request bodies above this are refused with 413. */
export const BODY_LIMIT = 1024 * 1024;

const METHODS: HTTPMethods[] = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

export async function createServer(ctx: ApiContext): Promise<FastifyInstance> {
  const app = Fastify({
    bodyLimit: BODY_LIMIT,
    logger: false,
    return503OnClosing: true,
    // Closing the server also closes idle keep-alive connections (streams in flight are ended by the service).
    forceCloseConnections: "idle",
    clientErrorHandler: (error, socket) => answerOnSocket(error, socket),
  });
  app.setReplySerializer((payload) => toJson(payload));
  // Bodies are JSON only: any other content type is a 415, not a string handed to the routes.
  app.removeContentTypeParser("text/plain");

  const methods = new Map<string, Set<string>>();
  app.addHook("onRoute", (route) => {
    const set = methods.get(route.url) ?? new Set<string>();
    for (const m of [route.method].flat()) set.add(m);
    methods.set(route.url, set);
  });

  app.setErrorHandler(async (error, request, reply) => {
    const { status, body, headers } = errorResponse(error);
    if (status >= 500) ctx.log.log("error", "request_failed", { route: request.url, ...errorFields(error) });
    reply.code(status).headers(headers);
    return body;
  });
  app.setNotFoundHandler(async (request) => {
    throw new ApiError(404, "unknown_url", `Unknown request URL: ${request.method} ${request.url.split("?")[0]}`);
  });
  app.addHook("onResponse", async (request, reply) => {
    if (selfLogged.has(request)) return;
    const route = request.routeOptions.url ?? "unmatched";
    ctx.metrics.request(route, reply.statusCode);
    ctx.log.log("info", "http", {
      method: request.method,
      route,
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 1000) / 1000,
    });
  });

  inferenceRoutes(app, ctx);
  modelRoutes(app, ctx);
  adminRoutes(app, ctx);
  statusRoutes(app, ctx);
  statusPageRoutes(app, ctx);

  // A known URL asked with another method: 405 naming the methods it takes.
  for (const [url, allowed] of [...methods]) {
    const missing = METHODS.filter((m) => !allowed.has(m));
    if (missing.length === 0) continue;
    const allow = [...allowed].join(", ");
    app.route({
      method: missing,
      url,
      handler: async (request, reply) => {
        reply.header("allow", allow);
        throw new ApiError(405, "method_not_allowed", `${request.method} is not allowed on ${url}; use ${allow}`);
      },
    });
  }
  return app;
}

/** Malformed HTTP never reaches a route: answer on the socket in the same shape, then close it. */
function answerOnSocket(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === "ECONNRESET" || !socket.writable) {
    socket.destroy();
    return;
  }
  const status = error.code === "HPE_HEADER_OVERFLOW" ? 431 : error.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
  const body = toJson({
    error: {
      message: `malformed HTTP request (${error.code ?? error.message})`,
      type: "invalid_request_error",
      param: null,
      code: "bad_http",
    },
  });
  const head = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}`,
    "content-type: application/json; charset=utf-8",
    `content-length: ${Buffer.byteLength(body)}`,
    "connection: close",
  ];
  socket.end(`${head.join("\r\n")}\r\n\r\n${body}`);
}
