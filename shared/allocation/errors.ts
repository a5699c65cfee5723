export class AllocationCommitFailedError extends Error {
  constructor(
    message: string,
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "AllocationCommitFailedError";
  }
}

/** The marker says a plan is stored, but it could not be read back (concurrent deletion, corrupt item). */
export class AllocationStateInvalidError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "AllocationStateInvalidError";
  }
}
