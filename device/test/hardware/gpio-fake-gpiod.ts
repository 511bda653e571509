/**
 * Fake gpiod tools: a folder of small bash scripts named gpiodetect, gpioinfo,
 * gpiofind, gpioget, gpioset and gpiomon that print what libgpiod 1.6.3's do
 * and keep the "kernel" (chips, line levels, who holds each line) in files
 * under a state folder. A holder whose process is gone no longer holds its
 * line, as the kernel frees a line when its file descriptor closes.
 *
 * A monitored input is moved by writing "0" or "1" lines to
 * `<state>/<chip>/<offset>.fifo` (press() does it).
 */
import { execFileSync } from "node:child_process";
import { chmod, mkdir, open, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface FakeGpiodChip {
  label: string;
  lines: number;
  names?: Record<number, string>;
}

const COMMON = `
S="__STATE__"
# chip_of <name|label|number>: prints "<name> <lines>"
chip_of() {
  while read -r name label n; do
    if [ "$1" = "$name" ] || [ "$1" = "$label" ] || [ "gpiochip$1" = "$name" ]; then echo "$name $n"; return 0; fi
  done < "$S/chips"
  return 1
}
# holder <chip> <offset>: prints "<tool> <pid>" of a live holder
holder() {
  local h="$S/$1/$2.holder" tool pid
  [ -f "$h" ] || return 1
  read -r tool pid < "$h"
  kill -0 "$pid" 2>/dev/null || return 1
  echo "$tool $pid"
}
`;

const TOOLS: Record<string, string> = {
  gpiodetect: `while read -r name label n; do echo "$name [$label] ($n lines)"; done < "$S/chips"`,
  gpioinfo: `
for want in "\${@:-all}"; do
  while read -r name label n; do
    if [ "$want" != all ] && [ "$want" != "$name" ] && [ "$want" != "$label" ]; then continue; fi
    found=1
    declare -A NM=()
    while read -r o nm; do NM[$o]="$nm"; done < "$S/names/$name"
    echo "$name - $n lines:"
    for ((i = 0; i < n; i++)); do
      lname=unnamed; [ -n "\${NM[$i]}" ] && lname="\\"\${NM[$i]}\\""
      if h=$(holder "$name" "$i"); then
        tool=\${h% *}; cons="\\"$tool\\""; flags=" [used]"
        if [ "$tool" = gpioset ]; then dir=output; else dir=input; fi
      else cons=unused; dir=input; flags=""; fi
      printf "\\tline %3d: %12s %12s %7s active-high%s\\n" "$i" "$lname" "$cons" "$dir" "$flags"
    done
  done < "$S/chips"
  if [ -z "$found" ]; then echo "gpioinfo: looking up chip $want: No such file or directory" >&2; exit 1; fi
  found=
done`,
  gpiofind: `
while read -r name label n; do
  while read -r o nm; do
    if [ "$nm" = "$1" ]; then echo "$name $o"; exit 0; fi
  done < "$S/names/$name"
done < "$S/chips"
exit 1`,
  gpioget: `
bias=as-is
while [ $# -gt 2 ]; do case "$1" in -B) bias=$2; shift 2;; *) shift;; esac; done
c=$(chip_of "$1") || { echo "gpioget: error reading GPIO values: No such file or directory" >&2; exit 1; }
chip=\${c% *}
if holder "$chip" "$2" >/dev/null; then echo "gpioget: error reading GPIO values: Device or resource busy" >&2; exit 1; fi
v="$S/$chip/$2.value"
if [ ! -f "$v" ]; then if [ "$bias" = pull-up ]; then echo 1 > "$v"; else echo 0 > "$v"; fi; fi
cat "$v"`,
  gpioset: `
while [ $# -gt 2 ]; do shift; done
c=$(chip_of "$1") || { echo "gpioset: error setting the GPIO line values: No such file or directory" >&2; exit 1; }
chip=\${c% *}; off=\${2%=*}; val=\${2#*=}
# The refusal takes a moment, as on a loaded Pi: long enough for gpioinfo to show the other gpioset first.
if holder "$chip" "$off" >/dev/null; then sleep 0.03; echo "gpioset: error setting the GPIO line values: Device or resource busy" >&2; exit 1; fi
echo "$val" > "$S/$chip/$off.value"
trap 'rm -f "$S/$chip/$off.holder"; exit 0' TERM INT
echo "gpioset $$" > "$S/$chip/$off.holder"
read -r _
rm -f "$S/$chip/$off.holder"`,
  gpiomon: `
while [ $# -gt 2 ]; do shift; done
c=$(chip_of "$1") || { echo "gpiomon: error waiting for events: No such file or directory" >&2; exit 1; }
chip=\${c% *}; off=$2
if holder "$chip" "$off" >/dev/null; then echo "gpiomon: error waiting for events: Device or resource busy" >&2; exit 1; fi
fifo="$S/$chip/$off.fifo"
[ -p "$fifo" ] || mkfifo "$fifo"
exec 3<>"$fifo"
trap 'rm -f "$S/$chip/$off.holder"; exit 0' TERM INT
echo "gpiomon $$" > "$S/$chip/$off.holder"
while read -r v <&3; do
  old=$(cat "$S/$chip/$off.value" 2>/dev/null)
  if [ "$v" != "$old" ]; then echo "$v" > "$S/$chip/$off.value"; echo "$v"; fi
done`,
};

export interface FakeGpiod {
  binDir: string;
  state: string;
  /** The line's level as the fake kernel has it. */
  level(chip: string, offset: number): Promise<string | undefined>;
  /** The live holder: "gpioset 1234", or undefined. */
  holder(chip: string, offset: number): Promise<{ tool: string; pid: number } | undefined>;
  /** Moves a monitored input (its gpiomon must be running). */
  drive(chip: string, offset: number, level: 0 | 1): Promise<void>;
}

export async function createFakeGpiod(dir: string, chips: FakeGpiodChip[]): Promise<FakeGpiod> {
  const binDir = join(dir, "bin");
  const state = join(dir, "kernel");
  await mkdir(binDir, { recursive: true });
  await mkdir(join(state, "names"), { recursive: true });
  const list = chips.map((c, i) => ({ ...c, name: `gpiochip${i}` }));
  await writeFile(join(state, "chips"), list.map((c) => `${c.name} ${c.label} ${c.lines}\n`).join(""));
  for (const c of list) {
    await mkdir(join(state, c.name), { recursive: true });
    const names = Object.entries(c.names ?? {}).map(([o, n]) => `${o} ${n}\n`);
    await writeFile(join(state, "names", c.name), names.join(""));
  }
  for (const [tool, body] of Object.entries(TOOLS)) {
    const path = join(binDir, tool);
    await writeFile(path, `#!/bin/bash\n${COMMON.replace("__STATE__", state)}\n${body}\n`);
    await chmod(path, 0o755);
  }
  const read = (p: string) =>
    readFile(p, "utf8").then(
      (s) => s.trim(),
      () => undefined,
    );
  return {
    binDir,
    state,
    level: (chip, offset) => read(join(state, chip, `${offset}.value`)),
    holder: async (chip, offset) => {
      const text = await read(join(state, chip, `${offset}.holder`));
      if (!text) return undefined;
      const [tool, pid] = text.split(" ");
      try {
        process.kill(Number(pid), 0);
      } catch {
        return undefined;
      }
      return { tool: tool as string, pid: Number(pid) };
    },
    drive: async (chip, offset, level) => {
      const fifo = await open(join(state, chip, `${offset}.fifo`), "a");
      await fifo.write(`${level}\n`);
      await fifo.close();
    },
  };
}

/** The real tool's one-line answer, for the report: e.g. `gpiodetect` prints nothing on a machine without chips. */
export function realTool(tool: string, args: string[] = []): { out: string; code: number } {
  try {
    return { out: execFileSync(tool, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }), code: 0 };
  } catch (err) {
    const e = err as { status?: number; stdout?: string; stderr?: string };
    return { out: `${e.stdout ?? ""}${e.stderr ?? ""}`, code: e.status ?? -1 };
  }
}
