/** Errors of the quota domain. Each sets `this.name` and carries its `cause`. */
export class QuotaConfigInvalidError extends Error {
  constructor(
    message: string,
    readonly reasons: string[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "QuotaConfigInvalidError";
  }
}

/** PutEvents failed (wholly or for some entries); the outbox entries stay pending and are retried. */
export class QuotaPublishError extends Error {
  constructor(
    message: string,
    readonly failedIds: string[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "QuotaPublishError";
  }
}

/** Concurrent evaluations kept invalidating each other's reads; the caller retries later (SQS redelivery). */
export class QuotaContentionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "QuotaContentionError";
  }
}
