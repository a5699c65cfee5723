/** The tenant is throttled by quota enforcement: the model was NOT called. */
export class TenantThrottledError extends Error {
  constructor(
    readonly tenantId: string,
    readonly retryAfterSeconds: number | undefined,
    readonly reason?: string,
    options?: { cause?: unknown },
  ) {
    super(
      `tenant '${tenantId}' is throttled${retryAfterSeconds !== undefined ? `; retry after ${retryAfterSeconds}s` : ""}${reason ? ` (${reason})` : ""}`,
      options,
    );
    this.name = "TenantThrottledError";
  }
}

/** The caller passed a tenant id that could never be metered (it would fail the event contract). */
export class DataplaneInvalidTenantError extends Error {
  constructor(
    message: string,
    readonly tenantId: unknown,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "DataplaneInvalidTenantError";
  }
}

/** The request cannot carry what the wrapper must add to it (e.g. a LoRA adapter in a non-JSON body). */
export class DataplaneRequestInvalidError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DataplaneRequestInvalidError";
  }
}

/** The decision endpoint failed or answered something that is not a decision. */
export class DecisionUnavailableError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "DecisionUnavailableError";
  }
}

/** The wrapper or emitter was set up in a way that would lose usage (e.g. no bus name). Thrown at construction. */
export class DataplaneConfigurationError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "DataplaneConfigurationError";
  }
}
