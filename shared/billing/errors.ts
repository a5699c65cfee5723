export class BillingExportInvalidError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BillingExportInvalidError";
  }
}

/** No export destination is configured (no local directory; the S3 writer does not exist yet). */
export class BillingExportNotConfiguredError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BillingExportNotConfiguredError";
  }
}

/** Some tenants' tiers could not be read (throttled keys kept coming back unprocessed). */
export class BillingTierLookupError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "BillingTierLookupError";
  }
}
