/**
 * PN532 traffic in words, one line per frame, for `paylane-sim pn532`:
 *
 *   ← InListPassiveTarget max 1, 106 kbps type A
 *   → 1 target: ATQA 0044 SAK 00 UID 04A1B2C3D4E5F6
 *
 * "←" is what the chip received, "→" what it answered (UM0701-02 §7 names).
 */
import { BaudRateType, Command, commandName, hex, toHex } from "./commands.ts";
import type { Pn532SimEvent } from "./simulator.ts";

const BR_TY: Record<number, string> = {
  [BaudRateType.typeA106]: "106 kbps type A",
  [BaudRateType.felica212]: "212 kbps FeliCa",
  [BaudRateType.felica424]: "424 kbps FeliCa",
  [BaudRateType.typeB106]: "106 kbps type B",
  [BaudRateType.jewel106]: "106 kbps Jewel",
};

const STATUS: Record<number, string> = {
  0: "ok",
  1: "timeout (no answer from the card)",
  20: "MIFARE authentication error",
  39: "not allowed now (no target selected)",
};

const spaced = (bytes: Uint8Array) => Array.from(bytes, hex).join(" ");
const status = (s: number | undefined) => STATUS[s ?? -1] ?? `status 0x${hex(s ?? 0)}`;

/** What a card command inside InDataExchange / InCommunicateThru asks. */
function cardCommand(c: Uint8Array): string {
  const op = c[0];
  if ((op === 0x60 || op === 0x61) && c.length === 12)
    return `MIFARE auth key ${op === 0x60 ? "A" : "B"} block ${c[1]} (key ${toHex(c.subarray(2, 8))})`;
  if (op === 0x60 && c.length === 1) return "GET_VERSION";
  if (op === 0x30 && c.length === 2) return `READ ${c[1]}`;
  if (op === 0xa0 && c.length === 18) return `MIFARE WRITE block ${c[1]}`;
  if (op === 0xa2 && c.length === 6) return `WRITE page ${c[1]}`;
  return spaced(c);
}

export function describeCommand(pd: Uint8Array): string {
  const code = pd[0] ?? -1;
  const p = pd.subarray(1);
  const name = commandName(code & 0xff);
  switch (code) {
    case Command.Diagnose:
      if (p[0] === 0x00) return `${name} communication test "${new TextDecoder().decode(p.subarray(1))}"`;
      return `${name} test 0x${hex(p[0] ?? 0)}`;
    case Command.ReadRegister: {
      const regs: string[] = [];
      for (let i = 0; i + 1 < p.length; i += 2) regs.push(hex(p[i] ?? 0) + hex(p[i + 1] ?? 0));
      return `${name} ${regs.join(" ")}`;
    }
    case Command.WriteRegister: {
      const regs: string[] = [];
      for (let i = 0; i + 2 < p.length; i += 3)
        regs.push(`${hex(p[i] ?? 0)}${hex(p[i + 1] ?? 0)}=${hex(p[i + 2] ?? 0)}`);
      return `${name} ${regs.join(" ")}`;
    }
    case Command.SetParameters:
      return `${name} flags 0x${hex(p[0] ?? 0)}`;
    case Command.SAMConfiguration:
      return `${name} mode ${p[0] ?? "?"}`;
    case Command.PowerDown:
      return `${name} wake-up on 0x${hex(p[0] ?? 0)}`;
    case Command.RFConfiguration:
      if (p[0] === 0x01) return `${name} RF field ${(p[1] ?? 0) & 1 ? "on" : "off"}`;
      if (p[0] === 0x05)
        return `${name} MaxRetries ATR ${p[1]}, PSL ${p[2]}, passive ${p[3] === 0xff ? "endless" : p[3]}`;
      return `${name} item 0x${hex(p[0] ?? 0)} ${spaced(p.subarray(1))}`;
    case Command.InListPassiveTarget: {
      const data = p.subarray(2);
      return `${name} max ${p[0]}, ${BR_TY[p[1] ?? -1] ?? `BrTy 0x${hex(p[1] ?? 0)}`}${data.length ? ` (${spaced(data)})` : ""}`;
    }
    case Command.InAutoPoll:
      return `${name} ${p[0] === 0xff ? "endless" : `${p[0]} polls`} every ${(p[1] ?? 0) * 150} ms, types ${spaced(p.subarray(2))}`;
    case Command.InDataExchange:
      return `${name} Tg ${(p[0] ?? 0) & 0x3f}: ${cardCommand(p.subarray(1))}`;
    case Command.InCommunicateThru:
      return `${name} ${cardCommand(p)}`;
    case Command.InSelect:
    case Command.InDeselect:
    case Command.InRelease:
      return `${name} Tg ${p[0] === 0 ? "all" : p[0]}`;
    default:
      return p.length ? `${name} ${spaced(p)}` : name;
  }
}

export function describeResponse(command: Uint8Array, pd: Uint8Array): string {
  const p = pd.subarray(1);
  switch (command[0]) {
    case Command.Diagnose:
      return command[1] === 0x00 ? `echo "${new TextDecoder().decode(p.subarray(1))}"` : `result 0x${hex(p[0] ?? 0)}`;
    case Command.GetFirmwareVersion:
      return `IC 0x${hex(p[0] ?? 0)} (PN5${hex(p[0] ?? 0)}) firmware ${p[1]}.${p[2]} support 0x${hex(p[3] ?? 0)}`;
    case Command.GetGeneralStatus:
      return `err 0x${hex(p[0] ?? 0)}, field ${p[1] ? "on" : "off"}, ${p[2]} target(s)`;
    case Command.ReadRegister:
      return `values ${spaced(p)}`;
    case Command.InListPassiveTarget:
    case Command.InAutoPoll: {
      if (!p[0]) return "no target";
      // InAutoPoll adds Type and length before the target data.
      const t = command[0] === Command.InAutoPoll ? p.subarray(3) : p.subarray(1);
      const uid = t.subarray(5, 5 + (t[4] ?? 0));
      return `${p[0]} target: ATQA ${hex(t[1] ?? 0)}${hex(t[2] ?? 0)} SAK ${hex(t[3] ?? 0)} UID ${toHex(uid)}`;
    }
    case Command.InDataExchange:
    case Command.InCommunicateThru: {
      const data = p.subarray(1);
      return data.length ? `${status(p[0])}: ${spaced(data)}` : status(p[0]);
    }
    case Command.PowerDown:
      return "ok, asleep until the HSU wake-up (0x55)";
    case Command.InSelect:
    case Command.InDeselect:
    case Command.InRelease:
    case Command.InJumpForDEP:
    case Command.InJumpForPSL:
      return status(p[0]);
    default:
      return p.length ? spaced(p) : "ok";
  }
}

/** One line for a simulator event, or undefined for events not worth a line. */
export function describeEvent(e: Pn532SimEvent): string | undefined {
  switch (e.type) {
    case "command":
      return `← ${describeCommand(e.pd)}`;
    case "response":
      return `→ ${describeResponse(e.command, e.pd)}`;
    case "error":
      return `→ syntax error frame: ${e.reason}`;
    case "waiting":
      return "… waiting for a card";
    case "nack":
      return "← NACK: the last response again";
    case "abort":
      return e.aborted ? "← ACK: command aborted" : undefined;
    case "wake":
      return "← wake-up (HSU 0x55)";
    case "sleep":
      return "  (asleep)";
    case "ignored":
      return `← frame ignored: chip ${e.why}`;
    case "discard":
      return `← ${e.bytes} byte${e.bytes === 1 ? "" : "s"} dropped (${e.reason})`;
  }
}
