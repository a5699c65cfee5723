/** A reconciliation range that is not whole UTC hours, or is empty or too long. */
export class ReconciliationInvalidRangeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ReconciliationInvalidRangeError";
  }
}

/** Neither a report bucket nor a report directory is configured. */
export class ReconciliationNotConfiguredError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ReconciliationNotConfiguredError";
  }
}

/** AWS's metrics could not be read (throttled, denied, a partial result): the hour is not reconciled, never reported as drift. */
export class ReconciliationProviderMetricsError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ReconciliationProviderMetricsError";
  }
}
