/**
 * A `Database` wrapper that times every statement and transaction the cloud
 * runs through it, so the benchmark can say where the bridge's time goes
 * without touching cloud sources.
 */
import type { Database, ListenEvents, Queryable } from "@paylane/cloud";

export interface StatementStats {
  label: string;
  count: number;
  ms: number;
}

/** Short names for the ingest path's statements; anything else is named by its first words. */
const LABELS: Array<[RegExp, string]> = [[/^WITH incoming AS/, "ingest statement (inbox, quarantine, high-water)"]];

function labelOf(sql: string): string {
  const s = sql.replace(/\s+/g, " ").trim();
  for (const [re, label] of LABELS) if (re.test(s)) return label;
  return s.slice(0, 40);
}

export class TimedDatabase implements Database {
  readonly kind: Database["kind"];
  readonly #inner: Database;
  readonly #statements = new Map<string, StatementStats>();
  /** Whole transactions: pool checkout + BEGIN + statements + COMMIT. */
  transactions = 0;
  transactionMs = 0;
  recording = false;

  constructor(inner: Database) {
    this.#inner = inner;
    this.kind = inner.kind;
  }

  get statements(): StatementStats[] {
    return [...this.#statements.values()].sort((a, b) => b.ms - a.ms);
  }

  reset(): void {
    this.#statements.clear();
    this.transactions = 0;
    this.transactionMs = 0;
  }

  async #timed<R>(sql: string, run: () => Promise<R>): Promise<R> {
    if (!this.recording) return run();
    const t0 = performance.now();
    try {
      return await run();
    } finally {
      const label = labelOf(sql);
      const s = this.#statements.get(label) ?? { label, count: 0, ms: 0 };
      s.count++;
      s.ms += performance.now() - t0;
      this.#statements.set(label, s);
    }
  }

  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<{ rows: R[] }> {
    return this.#timed(sql, () => this.#inner.query<R>(sql, params));
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await this.#inner.transaction((tx) =>
        fn({
          query: <R>(sql: string, params?: readonly unknown[]) => this.#timed(sql, () => tx.query<R>(sql, params)),
        }),
      );
    } finally {
      if (this.recording) {
        this.transactions++;
        this.transactionMs += performance.now() - t0;
      }
    }
  }

  /** Untimed: only migrations hold a session. */
  session<T>(fn: (conn: Queryable) => Promise<T>): Promise<T> {
    return this.#inner.session(fn);
  }

  exec(sql: string): Promise<void> {
    return this.#inner.exec(sql);
  }

  /** Untimed: the live feed's LISTEN (its connection is not the pool's). */
  listen(channel: string, onPayload: (payload: string) => void, events?: ListenEvents) {
    if (!this.#inner.listen) throw new Error("the wrapped database cannot LISTEN");
    return this.#inner.listen(channel, onPayload, events);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
