// The operator's routes, behind the admin token (Authorization: Bearer <token>): POST /v1/adapters imports a PEFT
// folder on this machine, or fetches an adapter by id from peers; DELETE /v1/adapters/:model removes one.
import { createHash, timingSafeEqual } from "node:crypto";
import { basename, resolve } from "node:path";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { isAdapterId, type AdapterId } from "../../engine/index.ts";
import { AdapterUnavailableError, type PeerNode } from "../../p2p/index.ts";
import type { ApiContext } from "../context.ts";
import { ApiError, badParam } from "../errors.ts";
import { bodyObject } from "../openai/request-params.ts";

export function adminRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const admin = { onRequest: async (request: FastifyRequest) => checkAdmin(request, ctx.adminToken) };

  app.post("/v1/adapters", admin, async (request, reply) => {
    const body = bodyObject(request.body);
    for (const key of Object.keys(body)) {
      if (!["path", "id", "alias", "replace"].includes(key)) throw badParam(key, "is not a recognized argument");
    }
    const { path, id, alias, replace } = body;
    if ((path === undefined) === (id === undefined)) throw badParam("body", "give exactly one of path and id");
    if (alias !== undefined && typeof alias !== "string") throw badParam("alias", "must be a string");
    if (replace !== undefined && typeof replace !== "boolean") throw badParam("replace", "must be a boolean");
    let adapterId: AdapterId;
    let defaultAlias: string | null = null;
    let existed: boolean;
    if (path !== undefined) {
      if (typeof path !== "string" || path === "") throw badParam("path", "must be a folder path on the node");
      const registered = new Set<string>();
      const off = ctx.engine.on("adapter:registered", ({ id: newId }) => registered.add(newId));
      try {
        adapterId = (await ctx.engine.adapters.import(resolve(path))).id as AdapterId;
      } finally {
        off();
      }
      existed = !registered.has(adapterId);
      defaultAlias = basename(resolve(path));
    } else {
      if (typeof id !== "string" || !isAdapterId(id.toLowerCase()))
        throw badParam("id", "must be 0x and 64 hex digits");
      adapterId = id.toLowerCase() as AdapterId;
      existed = ctx.engine.adapters.has(adapterId);
      if (!existed) {
        if (!ctx.peers) throw new ApiError(409, "no_peer_network", "this node has no peer network to fetch from");
        await fetchFromPeers(ctx.peers, adapterId);
      }
    }
    if (typeof alias === "string") await ctx.catalog.setAlias(alias, adapterId, { replace: replace === true });
    else if (defaultAlias !== null && ctx.catalog.resolve(defaultAlias) === null) {
      await ctx.catalog.setAlias(defaultAlias, adapterId).catch(() => undefined); // a folder name may not be a valid alias
    }
    const entry = ctx.catalog.entry(adapterId);
    reply.code(existed ? 200 : 201);
    return entry;
  });

  app.delete<{ Params: { model: string } }>("/v1/adapters/:model", admin, async (request) => {
    const resolved = ctx.catalog.require(request.params.model);
    if (resolved.adapterId === null) throw badParam("model", "names the base model, which cannot be removed");
    if (!resolved.registered) {
      throw new ApiError(404, "model_not_found", `adapter ${resolved.adapterId} is not on this node`, {
        param: "model",
      });
    }
    await ctx.engine.adapters.remove(resolved.adapterId);
    return { id: resolved.adapterId, object: "adapter", deleted: true };
  });
}

/** Gets an adapter from the peers announcing it (any live listing); 404 when none can supply it. */
async function fetchFromPeers(peers: PeerNode, id: AdapterId): Promise<void> {
  try {
    await peers.ensureAdapter(id);
  } catch (error) {
    if (!(error instanceof AdapterUnavailableError)) throw error;
    throw new ApiError(404, "adapter_unavailable", `no peer could supply adapter ${id}: ${error.message}`, {
      param: "id",
    });
  }
}

function checkAdmin(request: FastifyRequest, token: string): void {
  const header = request.headers.authorization;
  const given = typeof header === "string" && header.startsWith("Bearer ") ? header.slice(7).trim() : "";
  const digest = (s: string): Buffer => createHash("sha256").update(s).digest();
  if (given === "" || !timingSafeEqual(digest(given), digest(token))) {
    throw new ApiError(
      401,
      "invalid_admin_token",
      "this route needs the node's admin token (Authorization: Bearer ...)",
      {
        headers: { "www-authenticate": "Bearer" },
      },
    );
  }
}
