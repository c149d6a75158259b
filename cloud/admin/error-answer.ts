/**
 * What a failure becomes at the admin API: an HTTP status (http-status.ts, keyed by error code)
 * and an `Error` body `{error, message, issues?, conflictsWith?}`.
 */
import type { FastifySchemaValidationError } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";
import { StoreError, UnderpassError, ValidationError } from "../../shared/errors.js";
import { MappingConflictError } from "../store/overlap.js";
import { httpStatusFor } from "./http-status.js";
import { type ErrorAnswer, flattenIssues, type Issue } from "./schemas.js";

/** A ValidationError whose message sums up the issues: the first in full, the rest counted. */
export function validationError(issues: readonly Issue[]): ValidationError {
  const first = issues[0];
  const summary =
    first === undefined ? "invalid body" : `${first.path === "" ? "body" : first.path}: ${first.message}`;
  return new ValidationError(
    issues.length > 1 ? `${summary} (and ${issues.length - 1} more issue(s))` : summary,
    issues,
  );
}

/** The status and body for anything a route or a hook threw. */
export function answerForError(err: unknown): { status: number; body: ErrorAnswer } {
  if (hasZodFastifySchemaValidationErrors(err)) {
    return answerForError(validationError(issuesOfRoute(err.validation)));
  }
  if (err instanceof MappingConflictError) {
    const body = { error: err.code, message: err.message, conflictsWith: err.conflictsWith };
    return { status: httpStatusFor(err), body };
  }
  if (err instanceof ValidationError) {
    const body = { error: err.code, message: err.message, issues: [...err.issues] };
    return { status: httpStatusFor(err), body };
  }
  if (err instanceof UnderpassError) {
    // Internal and store failures are logged in full; the caller learns only what happened.
    const hidden = err.code === UnderpassError.spec.code || err instanceof StoreError;
    const message = hidden ? (err.constructor as typeof UnderpassError).spec.description : err.message;
    return { status: httpStatusFor(err), body: { error: err.code, message } };
  }
  const fastifyError = asFastifyClientError(err);
  if (fastifyError !== undefined) {
    const { status, message } = fastifyError;
    return { status, body: { error: ValidationError.spec.code, message, issues: [{ path: "", message }] } };
  }
  return { status: 500, body: { error: UnderpassError.spec.code, message: "internal error" } };
}

/**
 * The issues of a route's schema validation. fastify-type-provider-zod keeps each zod issue's
 * code, message and unknown keys, and its path as a JSON pointer (`/` + the path joined by `/`).
 */
function issuesOfRoute(validation: readonly FastifySchemaValidationError[]): Issue[] {
  return flattenIssues(
    validation.map((v) => {
      const keys = v.params["keys"];
      return {
        code: v.keyword,
        path: v.instancePath === "/" ? [] : v.instancePath.slice(1).split("/"),
        message: v.message ?? "invalid",
        keys: Array.isArray(keys) ? keys.map(String) : undefined,
      };
    }),
  );
}

/** Fastify's own 4xx errors (content type, body size, bad URL): the caller's input was wrong. */
function asFastifyClientError(err: unknown): { status: number; message: string } | undefined {
  if (typeof err !== "object" || err === null) return undefined;
  const code = "code" in err && typeof err.code === "string" ? err.code : "";
  const statusCode = "statusCode" in err && typeof err.statusCode === "number" ? err.statusCode : 0;
  if (!code.startsWith("FST_ERR_") || statusCode < 400 || statusCode >= 500) return undefined;
  if (code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") {
    return { status: 400, message: "the body must be JSON (Content-Type: application/json)" };
  }
  const message = err instanceof Error ? err.message : code;
  return { status: statusCode === 413 ? 413 : 400, message };
}
