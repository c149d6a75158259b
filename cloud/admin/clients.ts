/** `/v1/clients`: register, list, rotate and delete SOCKS5 clients (RFC 1929 credentials). */
import { randomBytes } from "node:crypto";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { NotFoundError, StoreError } from "../../shared/errors.js";
import type { ClientRecord, Store } from "../store/store.js";
import { auditChange } from "./change-audit.js";
import type { AdminRouteOptions } from "./deps.js";
import { afterwards } from "./follow-up.js";
import { newId, now } from "./records.js";
import { answers, idParams, json, noContent } from "./responses.js";
import { clientAnswer, clientCreateBody, clientCreated } from "./schemas.js";
import { generateSecret, hashSecret } from "./secrets.js";

/** What the caller sees of a new or rotated client: its password, this once. */
function created(client: ClientRecord, password: string) {
  const { id, name, location, username, createdAt } = client;
  return { id, name, location, username, password, createdAt };
}

export const clientRoutes: FastifyPluginAsyncZod<AdminRouteOptions> = async (app, { store, deps }) => {
  app.post(
    "/v1/clients",
    {
      schema: {
        operationId: "createClient",
        summary: "Register a SOCKS5 client; its password is shown once.",
        body: clientCreateBody,
        response: answers({ 201: json("Created.", clientCreated) }, 400),
      },
    },
    async (req, reply) => {
      const password = generateSecret("ups");
      const client: ClientRecord = {
        id: newId("cl"),
        name: req.body.name,
        location: req.body.location,
        username: await uniqueUsername(store, req.body.name),
        passwordHash: hashSecret(password),
        createdAt: now(),
      };
      await store.addClient(client);
      req.log.info(
        { clientId: client.id, location: client.location, username: client.username },
        "client created",
      );
      auditChange(deps, req, {
        event: "admin.client.created",
        message: `client ${client.name} created in location ${client.location}`,
        clientId: client.id,
        after: client,
      });
      return reply.code(201).send(created(client, password));
    },
  );

  app.get(
    "/v1/clients",
    {
      schema: {
        operationId: "listClients",
        summary: "List SOCKS5 clients (never their passwords).",
        response: answers({ 200: json("Clients.", z.array(clientAnswer)) }),
      },
    },
    async () =>
      (await store.listClients()).map(
        ({ id, name, location, username, createdAt, lastUsedAt, lastAddress }) => ({
          id,
          name,
          location,
          username,
          createdAt,
          lastUsedAt: lastUsedAt ?? null,
          lastAddress: lastAddress ?? null,
        }),
      ),
  );

  app.post(
    "/v1/clients/:id/rotate",
    {
      schema: {
        operationId: "rotateClient",
        summary: "Issue a new password, shown once; the old one stops at once and its connections are reset.",
        params: idParams,
        response: answers({ 200: json("The new password.", clientCreated) }, 404),
      },
    },
    async (req) => {
      const { id } = req.params;
      const before = (await store.listClients()).find((c) => c.id === id);
      if (before === undefined) throw new NotFoundError(`no client ${id}`);
      const password = generateSecret("ups");
      const after: ClientRecord = { ...before, passwordHash: hashSecret(password) };
      await store.replaceClient(after);
      req.log.info({ clientId: id }, "client password rotated");
      auditChange(deps, req, {
        event: "admin.client.rotated",
        message: `password of client ${before.name} rotated; its connections are reset`,
        clientId: id,
      });
      afterwards(req.log, "resetting the client's connections", () => deps.connections.killByClient(id));
      return created(after, password);
    },
  );

  app.delete(
    "/v1/clients/:id",
    {
      schema: {
        operationId: "deleteClient",
        summary: "Delete a client and reset its live connections.",
        params: idParams,
        response: answers({ 204: noContent }, 404),
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      const before = (await store.listClients()).find((c) => c.id === id);
      if (!(await store.deleteClient(id))) throw new NotFoundError(`no client ${id}`);
      req.log.info({ clientId: id }, "client deleted");
      auditChange(deps, req, {
        event: "admin.client.deleted",
        message: `client ${before?.name ?? id} deleted; its connections are reset`,
        clientId: id,
        before: before ?? null,
      });
      afterwards(req.log, "resetting the client's connections", () => deps.connections.killByClient(id));
      return reply.code(204).send();
    },
  );
};

/** Longest slug kept from the name; the username stays far below RFC 1929's 255 bytes. */
const MAX_SLUG = 32;

/**
 * A SOCKS5 username from the client's name: `erp-integration-3f9a1c`. Only `a-z 0-9 -`, so it
 * fits a proxy URL (`socks5://user:pass@host`) unescaped; the random suffix keeps it unique.
 */
export function usernameFromName(name: string): string {
  const slug =
    name
      .normalize("NFKD")
      .replace(/[\u0300-\u036f]/g, "")
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .slice(0, MAX_SLUG)
      .replace(/^-+|-+$/g, "") || "client";
  return `${slug}-${randomBytes(3).toString("hex")}`;
}

/** A username no client has yet; the store refuses a taken one anyway, should two race. */
async function uniqueUsername(store: Store, name: string): Promise<string> {
  for (let attempt = 0; attempt < 8; attempt++) {
    const username = usernameFromName(name);
    if ((await store.findClientByUsername(username)) === undefined) return username;
  }
  throw new StoreError("could not find a free username");
}
