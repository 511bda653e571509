/**
 * Event-driven waiting for tests: a condition is re-checked whenever
 * something that could change it happens (a commit, an ack, a state change),
 * and the wait fails with a description if it has not held by the deadline.
 * The deadline is a safety net, not a sleep: a passing test never waits on it.
 */
export class Signal {
  #waiters = new Set<() => void>();

  notify = (): void => {
    for (const w of [...this.#waiters]) w();
  };

  /**
   * Resolves with the first truthy `check()`. The waiter is registered before
   * the first check runs, so a notify that arrives while an (async) check is
   * still being evaluated is never lost: it makes the check run again.
   */
  until<T>(
    check: () => T | undefined | false | Promise<T | undefined | false>,
    what: string,
    timeoutMs = 30_000,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let checking = false;
      let again = false;
      const waiter = () => {
        if (checking) {
          again = true;
          return;
        }
        checking = true;
        Promise.resolve()
          .then(check)
          .then((v) => {
            checking = false;
            if (v) {
              done();
              resolve(v);
            } else if (again) {
              again = false;
              waiter();
            }
          })
          .catch((err: unknown) => {
            done();
            reject(err);
          });
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(waiter);
      };
      this.#waiters.add(waiter);
      waiter();
    });
  }
}
