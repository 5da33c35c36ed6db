// GET /v1/models and /v1/models/:model (OpenAI's list and retrieve), GET /v1/adapters: the base model and every
// registered adapter, with its tier, aliases and size.
import type { FastifyInstance } from "fastify";
import type { ApiContext } from "../context.ts";
import { ApiError } from "../errors.ts";

export function modelRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get("/v1/models", async () => ({ object: "list", data: ctx.catalog.list() }));
  app.get<{ Params: { model: string } }>("/v1/models/:model", async (request) => {
    const entry = ctx.catalog.entry(request.params.model);
    if (!entry) {
      throw new ApiError(404, "model_not_found", `The model '${request.params.model}' does not exist on this node`, {
        param: "model",
      });
    }
    return entry;
  });
  app.get("/v1/adapters", async () => ({
    object: "list",
    data: ctx.catalog.list().filter((m) => m.kind === "adapter"),
  }));
}
