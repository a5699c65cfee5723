export class UsageCommitFailedError extends Error {
  constructor(
    message: string,
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "UsageCommitFailedError";
  }
}

export class UsageQueryInvalidError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageQueryInvalidError";
  }
}
