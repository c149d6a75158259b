/**
 * `POST /v1/mappings/:id/ftp-check`: a real FTP session through the real path, step by step
 * (cloud/ftp/check.ts), each failed step with a coded reason and a fix.
 */
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { FTP_CHECK_CODE, type FtpCheckCode } from "../ftp/check-codes.js";
import type { AdminRouteOptions } from "./deps.js";
import { mappingOr404 } from "./mappings.js";
import { answers, idParams, json } from "./responses.js";

export const ftpCheckBody = z
  .strictObject({
    username: z.string().min(1).max(255).default("anonymous"),
    password: z.string().max(255).default("underpass-check@"),
    path: z.string().min(1).max(1024).default("/"),
  })
  .meta({
    id: "FtpCheckRequest",
    description: "The login to use (anonymous by default) and the directory to list.",
  });

const codes = Object.keys(FTP_CHECK_CODE) as [FtpCheckCode, ...FtpCheckCode[]];

export const ftpCheckStep = z
  .strictObject({
    step: z.enum(["connect", "greeting", "login", "epsv", "pasv", "active"]),
    ok: z.boolean(),
    detail: z.string(),
    code: z
      .enum(codes)
      .optional()
      .meta({ description: "Why it failed, or what to know although it passed." }),
    fix: z.string().optional().meta({ description: "What to change." }),
    reply: z.string().optional().meta({ description: "The server's reply line that decided the step." }),
    announced: z
      .strictObject({ host: z.string().nullable(), port: z.number().int() })
      .optional()
      .meta({ description: "Passive modes: what the server announced." }),
    coveredBy: z
      .string()
      .nullable()
      .optional()
      .meta({ description: 'The mapping that covers the data port, "ftp-aware", or null.' }),
    dataOpened: z.boolean().optional(),
    names: z.array(z.string()).readonly().optional().meta({ description: "The first names of the listing." }),
  })
  .meta({ id: "FtpCheckStep" });

export const ftpCheckAnswer = z
  .strictObject({
    mappingId: z.string(),
    target: z.string(),
    ok: z.boolean().meta({ description: "Every step passed." }),
    steps: z.array(ftpCheckStep).readonly(),
  })
  .meta({ id: "FtpCheckResult" });
export type FtpCheckAnswerBody = z.output<typeof ftpCheckAnswer>;

export const ftpCheckRoutes: FastifyPluginAsyncZod<AdminRouteOptions> = async (app, { store, deps }) => {
  app.post(
    "/v1/mappings/:id/ftp-check",
    {
      schema: {
        operationId: "ftpCheckMapping",
        summary: "Run a real FTP session through the mapping: greeting, login, EPSV, PASV, active mode.",
        params: idParams,
        body: ftpCheckBody.nullish(),
        response: answers(
          { 200: json("Each step, with a coded reason and a fix for a failure.", ftpCheckAnswer) },
          400,
          404,
        ),
      },
    },
    async (req) => {
      const mapping = await mappingOr404(store, req.params.id);
      const login = ftpCheckBody.parse(req.body ?? {});
      const answer = await deps.ftpCheck.check(mapping, login);
      req.log.info({ mappingId: mapping.id, ok: answer.ok }, "FTP check done");
      return answer;
    },
  );
};
