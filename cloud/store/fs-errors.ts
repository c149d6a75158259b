/** What a failed file system call says, for the file store's messages. */

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The errno name (`ENOENT`, …) of a failed call, if it has one. */
export function errnoCode(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "code" in err ? String(err.code) : undefined;
}
