/** A failure the CLI reports as one line with its exit code (1 unless said). */
export class ProvisionError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = "ProvisionError";
  }
}
