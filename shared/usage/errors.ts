export class UsageQueryInvalidError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageQueryInvalidError";
  }
}
