/** uvu swallows errors thrown in before/after hooks; this says why nothing ran, and fails the file. */
export function loud<A extends unknown[]>(
  what: string,
  fn: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  return async (...args) => {
    try {
      await fn(...args);
    } catch (err) {
      console.error(`\n${what} failed:`, err);
      process.exitCode = 1;
      throw err;
    }
  };
}
