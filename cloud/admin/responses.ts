/**
 * The parts every route schema shares: a JSON answer with the description the document shows
 * for its status, the error answers, the empty answer, and the `:id` parameter.
 */
import { z } from "zod";
import { errorAnswer } from "./schemas.js";

/** A JSON answer; the description is what the document says the status means for the route. */
export function json<S extends z.ZodType>(description: string, schema: S) {
  return { description, content: { "application/json": { schema } } };
}

/** 204: no body. */
export const noContent = z.undefined().meta({ description: "Done." });

/** The error answers, by status: every one is an `Error` body. */
const failures = {
  400: json("Validation failed; `issues` lists each problem.", errorAnswer),
  401: json("Missing or wrong admin token.", errorAnswer),
  404: json("No such id.", errorAnswer),
  409: json("Overlaps an existing mapping of the same location; `conflictsWith` names it.", errorAnswer),
  429: json(
    "Too many failed authentications from this address or with this token; `Retry-After` says when to try again. The right token is never refused.",
    errorAnswer,
  ),
  500: json("Internal or store failure; nothing was changed.", errorAnswer),
};

type Failures = typeof failures;

/**
 * The answers of a route that needs the admin token: its own, 401, 429 and 500 (possible on
 * every such route), and the other failures it names.
 */
export function answers<const Own extends object, const Also extends 400 | 404 | 409>(
  own: Own,
  ...also: Also[]
): Own & Pick<Failures, 401 | 429 | 500 | Also> {
  const statuses: Array<keyof Failures> = [401, 429, 500, ...also];
  const picked = Object.fromEntries(statuses.map((status) => [status, failures[status]]));
  return { ...own, ...picked } as Own & Pick<Failures, 401 | 429 | 500 | Also>;
}

/** `/…/:id`: the id of one agent, client, mapping or connection. */
export const idParams = z.strictObject({ id: z.string().meta({ description: "The record's id." }) });
