/** Durations as installers type them: `90s`, `30m`, `24h`, `7d`, or plain seconds. */
import { InvalidArgumentError } from "commander";

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

export function parseDuration(value: string): number {
  const m = /^(\d+)\s*([smhd]?)$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError(`expected a duration like 30m, 24h or 7d, got ${JSON.stringify(value)}`);
  return Number(m[1]) * (UNIT_SECONDS[m[2] || "s"] ?? 1);
}

/** `86400` → `24h`, for messages. */
export function formatDuration(seconds: number): string {
  for (const [unit, size] of [
    ["d", 86_400],
    ["h", 3600],
    ["m", 60],
  ] as const) {
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  }
  return `${seconds}s`;
}
