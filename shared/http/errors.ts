/**
 * Input errors of the HTTP layer. Each maps to a 4xx JSON answer (shared/runtime/http.ts);
 * none of them ever becomes a 500.
 */

/** A request the API cannot read: a bad path segment, query value or body. 400. */
export class HttpInputInvalidError extends Error {
  /** The `error` field of the answer: `InvalidTenantId`, `InvalidQuery`, `InvalidBody`, ... */
  readonly code: string;

  constructor(
    message: string,
    readonly reasons: readonly string[] = [message],
    options: { code?: string; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "HttpInputInvalidError";
    this.code = options.code ?? "InvalidInput";
  }
}

/**
 * A page cursor this API did not issue for this listing: malformed, tampered with, signed with
 * another key, or issued for another route or another month/day. 400.
 */
export class HttpCursorInvalidError extends Error {
  readonly code = "InvalidCursor";

  constructor(message = "cursor is not one this API returned for this listing", options?: { cause?: unknown }) {
    super(message, options);
    this.name = "HttpCursorInvalidError";
  }
}
