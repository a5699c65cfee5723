/** Admission refused a call; the wrapper turns it into `TenantThrottledError` (or a downgrade). */
export class AdmissionRefusedError extends Error {
  constructor(
    message: string,
    readonly tenantId: string,
    /** `budget-wait`: the tier's `maxWaitMs` passed before a lease came (retry; the budget may hold it). */
    readonly reason: "budget" | "budget-wait" | "pool-shed" | "pool-saturated",
    readonly retryAfterSeconds: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "AdmissionRefusedError";
  }
}

/** The request cannot be bounded (no max_tokens and none may be added). */
export class AdmissionRequestUnboundedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AdmissionRequestUnboundedError";
  }
}

/** Concurrent writers kept winning the pool window's version check. */
export class AdmissionContentionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AdmissionContentionError";
  }
}

/** `ADMISSION_CONFIG_JSON` does not parse or does not validate. */
export class AdmissionConfigInvalidError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AdmissionConfigInvalidError";
  }
}
