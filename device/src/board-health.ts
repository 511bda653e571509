/**
 * What the board itself looks like, for telemetry: memory, the journal's
 * disk, and the CPU temperature where the board has a thermal zone (a Pi
 * does; a VM or a container usually does not: null then, not an error).
 */
import { readFile, statfs } from "node:fs/promises";
import { freemem, totalmem } from "node:os";

export const CPU_THERMAL_ZONE = "/sys/class/thermal/thermal_zone0/temp";

export interface BoardHealth {
  memory: { rssBytes: number; freeBytes: number; totalBytes: number };
  /** Undefined when the folder's filesystem could not be read. */
  disk: { freeBytes: number; totalBytes: number } | undefined;
  cpuTemperatureC: number | null;
}

export async function readBoardHealth(dataDir: string, thermalZone = CPU_THERMAL_ZONE): Promise<BoardHealth> {
  const [disk, cpuTemperatureC] = await Promise.all([diskOf(dataDir), cpuTemperature(thermalZone)]);
  return {
    memory: { rssBytes: process.memoryUsage.rss(), freeBytes: freemem(), totalBytes: totalmem() },
    disk,
    cpuTemperatureC,
  };
}

async function diskOf(dir: string): Promise<BoardHealth["disk"]> {
  try {
    const s = await statfs(dir);
    // bavail: what an unprivileged process (the daemon) can still write.
    return { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
  } catch {
    return undefined;
  }
}

/** Millidegrees Celsius in sysfs; one decimal is plenty. */
async function cpuTemperature(path: string): Promise<number | null> {
  try {
    const milli = Number.parseInt((await readFile(path, "utf8")).trim(), 10);
    return Number.isFinite(milli) ? Math.round(milli / 100) / 10 : null;
  } catch {
    return null;
  }
}
