/**
 * A list page's table: why its load failed, what it shows when there is
 * nothing, and the header and rows in the one fixed-row-height grid.
 */
import type { ComponentChildren, VNode } from "preact";
import { Empty, Problem } from "../ui.tsx";

/** A header cell: its words, right-aligned when the column holds numbers, heard only when `hidden`. */
export type Column = string | { label: string; num?: boolean; hidden?: boolean };

export interface DataTableProps<T> {
  /** The table's classes next to `grid` (e.g. "fleet", "compact"): pages and tests find tables by them. */
  class?: string;
  columns: readonly Column[];
  /** The rows; undefined while they load (or when the load failed). */
  rows: readonly T[] | undefined;
  /** One `<tr>` (with its key) for an item. */
  row: (item: T) => VNode;
  /** The load's error, said as "Could not <what>: …". */
  error?: unknown;
  what?: string;
  /** Said when the rows loaded and there are none. */
  empty: ComponentChildren;
  /**
   * The header stays while loading or empty, the empty words below it: for a
   * table whose rows come and go under a filter, so the page never jumps.
   */
  steady?: boolean;
}

export function DataTable<T>({ class: cls, columns, rows, row, error, what, empty, steady }: DataTableProps<T>) {
  const none = rows?.length === 0 ? <Empty>{empty}</Empty> : null;
  const table =
    steady || rows?.length ? (
      <div class="table-wrap">
        <table class={cls ? `grid ${cls}` : "grid"}>
          <thead>
            <tr>{columns.map(header)}</tr>
          </thead>
          <tbody>{rows?.map(row)}</tbody>
        </table>
      </div>
    ) : null;
  return (
    <>
      <Problem error={error} what={what} />
      {steady ? table : none}
      {steady ? none : table}
    </>
  );
}

function header(c: Column) {
  const { label, num, hidden } = typeof c === "string" ? { label: c } : c;
  return (
    <th key={label} scope="col" class={num ? "num" : undefined}>
      {hidden ? <span class="sr-only">{label}</span> : label}
    </th>
  );
}
