/**
 * The PN532 commands the kiosk uses, as packet data (PD0 = command code,
 * PD1.. = parameters; the frame layer adds TFI and checksums). Builders for
 * both directions live here so the reader and the simulator cannot disagree.
 * Section numbers are NXP UM0701-02 (PN532 User Manual, Rev. 02).
 */

export const Command = {
  /** §7.2.1 */
  Diagnose: 0x00,
  /** §7.2.2, p. 73 */
  GetFirmwareVersion: 0x02,
  /** §7.2.3 */
  GetGeneralStatus: 0x04,
  /** §7.2.4 */
  ReadRegister: 0x06,
  /** §7.2.5 */
  WriteRegister: 0x08,
  /** §7.2.6 */
  ReadGPIO: 0x0c,
  /** §7.2.7 */
  WriteGPIO: 0x0e,
  /** §7.2.8 */
  SetSerialBaudRate: 0x10,
  /** §7.2.9 */
  SetParameters: 0x12,
  /** §7.2.10, p. 89 */
  SAMConfiguration: 0x14,
  /** §7.2.11 */
  PowerDown: 0x16,
  /** §7.3.1, p. 101 */
  RFConfiguration: 0x32,
  /** §7.3.2 */
  RFRegulationTest: 0x58,
  /** §7.3.8 */
  InDataExchange: 0x40,
  /** §7.3.9 */
  InCommunicateThru: 0x42,
  /** §7.3.10 */
  InDeselect: 0x44,
  /** §7.3.5, p. 115 */
  InListPassiveTarget: 0x4a,
  /** §7.3.11, p. 140 */
  InRelease: 0x52,
  /** §7.3.12 */
  InSelect: 0x54,
  /** §7.3.13 */
  InAutoPoll: 0x60,
  /** §7.3.3 */
  InJumpForDEP: 0x56,
  /** §7.3.4 */
  InJumpForPSL: 0x46,
  /** §7.3.6 */
  InATR: 0x50,
  /** §7.3.7 */
  InPSL: 0x4e,
  /** §7.3.14 */
  TgInitAsTarget: 0x8c,
} as const;

const NAMES = new Map<number, string>(Object.entries(Command).map(([name, code]) => [code, name]));

/** The manual's name of a command code, or its hex (e.g. "0x7A"). */
export function commandName(code: number): string {
  return NAMES.get(code) ?? `0x${hex(code)}`;
}

/** InListPassiveTarget BrTy values (§7.3.5): the modulation and bit rate asked for. */
export const BaudRateType = {
  typeA106: 0x00,
  felica212: 0x01,
  felica424: 0x02,
  typeB106: 0x03,
  jewel106: 0x04,
} as const;

/** A response's PD0 is the command code + 1 (§6.2.1.1). */
export function responseCode(command: number): number {
  return (command + 1) & 0xff;
}

export class Pn532ProtocolError extends Error {
  override name = "Pn532ProtocolError";
}

/**
 * HSU wake-up: a 0x55 0x55 then a long run of 0x00 before the first command
 * (UM0701-02 §7.2.11 PowerDown, HSU wake-up condition; PN532 C106 application
 * note AN10609_3 — the same 16 bytes libnfc's pn532_uart sends). The C106
 * powers up in low-VBat mode and leaves it on the SAMConfiguration that must
 * follow.
 */
export const HSU_WAKEUP: Uint8Array = Uint8Array.from([0x55, 0x55, ...new Array<number>(14).fill(0x00)]);

// ---- host → PN532 ----------------------------------------------------------

export function getFirmwareVersion(): Uint8Array {
  return Uint8Array.of(Command.GetFirmwareVersion);
}

/**
 * SAMConfiguration in normal mode (Mode 0x01: the SAM is not used). Timeout is
 * only meaningful in virtual-card mode; 0x14 (= 1 s) and IRQ 0x01 are what
 * the manual's examples send.
 */
export function samConfiguration(opts: { timeout?: number; irq?: boolean } = {}): Uint8Array {
  const timeout = opts.timeout ?? 0x14;
  if (!Number.isInteger(timeout) || timeout < 0 || timeout > 0xff) {
    throw new Pn532ProtocolError(`SAMConfiguration timeout must be a byte (units of 50 ms), got ${timeout}`);
  }
  return Uint8Array.of(Command.SAMConfiguration, 0x01, timeout, opts.irq === false ? 0x00 : 0x01);
}

/**
 * RFConfiguration CfgItem 0x05 (MaxRetries). Out of reset MxRtyPassiveActivation
 * is 0xFF — InListPassiveTarget would wait for a card forever; a small value
 * makes it answer NbTg = 0 when the field is empty, which is how a poll
 * notices that a card has left.
 */
export function rfConfigurationMaxRetries(passiveActivation = 0x01): Uint8Array {
  if (!Number.isInteger(passiveActivation) || passiveActivation < 0 || passiveActivation > 0xfe) {
    throw new Pn532ProtocolError(
      `MxRtyPassiveActivation must be 0..254 (0xFF means forever), got ${passiveActivation}`,
    );
  }
  return Uint8Array.of(Command.RFConfiguration, 0x05, 0xff, 0x01, passiveActivation);
}

/** InListPassiveTarget: MaxTg = 1, BrTy = 0x00 (106 kbps ISO/IEC 14443 Type A). */
export function inListPassiveTarget(): Uint8Array {
  return Uint8Array.of(Command.InListPassiveTarget, 0x01, 0x00);
}

/** InRelease of target `tg` (0x00 would release all targets). */
export function inRelease(tg = 0x01): Uint8Array {
  if (!Number.isInteger(tg) || tg < 0 || tg > 0xff)
    throw new Pn532ProtocolError(`target number must be a byte, got ${tg}`);
  return Uint8Array.of(Command.InRelease, tg);
}

// ---- PN532 → host ----------------------------------------------------------

export interface FirmwareVersion {
  /** 0x32 for a PN532. */
  ic: number;
  ver: number;
  rev: number;
  /** Bit 0 ISO/IEC 14443 Type A, bit 1 Type B, bit 2 ISO 18092. */
  support: number;
}

/** What a PN532 v1.6 answers (§7.2.2). */
export const PN532_V1_6: FirmwareVersion = { ic: 0x32, ver: 0x01, rev: 0x06, support: 0x07 };

export interface PassiveTarget {
  tg: number;
  /** ATQA, two bytes as sent (§7.3.5: SENS_RES). */
  sensRes: number;
  /** SAK (§7.3.5: SEL_RES). */
  selRes: number;
  uid: Uint8Array;
}

function expect(pd: Uint8Array, command: number, name: string, minLength: number): void {
  if (pd.length < 1 || pd[0] !== responseCode(command)) {
    const got = pd.length ? `0x${hex(pd[0] ?? 0)}` : "nothing";
    throw new Pn532ProtocolError(`${name} response must start with 0x${hex(responseCode(command))}, got ${got}`);
  }
  if (pd.length < minLength) {
    throw new Pn532ProtocolError(`${name} response is ${pd.length} bytes, expected at least ${minLength}`);
  }
}

export function parseFirmwareVersion(pd: Uint8Array): FirmwareVersion {
  expect(pd, Command.GetFirmwareVersion, "GetFirmwareVersion", 5);
  return { ic: pd[1] ?? 0, ver: pd[2] ?? 0, rev: pd[3] ?? 0, support: pd[4] ?? 0 };
}

export function parseSamConfiguration(pd: Uint8Array): void {
  expect(pd, Command.SAMConfiguration, "SAMConfiguration", 1);
}

export function parseRfConfiguration(pd: Uint8Array): void {
  expect(pd, Command.RFConfiguration, "RFConfiguration", 1);
}

/** The one target found (MaxTg = 1, 106 kbps Type A), or null when the field is empty. */
export function parseInListPassiveTarget(pd: Uint8Array): PassiveTarget | null {
  expect(pd, Command.InListPassiveTarget, "InListPassiveTarget", 2);
  const nbTg = pd[1] ?? 0;
  if (nbTg === 0) return null;
  if (pd.length < 7) {
    throw new Pn532ProtocolError(`InListPassiveTarget reports ${nbTg} target(s) but carries only ${pd.length} bytes`);
  }
  const idLength = pd[6] ?? 0;
  if (idLength !== 4 && idLength !== 7 && idLength !== 10) {
    throw new Pn532ProtocolError(`InListPassiveTarget NFCIDLength must be 4, 7 or 10, got ${idLength}`);
  }
  if (pd.length < 7 + idLength) {
    throw new Pn532ProtocolError(
      `InListPassiveTarget NFCID1 needs ${idLength} bytes, only ${pd.length - 7} present (response truncated)`,
    );
  }
  // Anything after NFCID1 is the ATS of an ISO/IEC 14443-4 card; the kiosk only needs the UID.
  return {
    tg: pd[2] ?? 0,
    sensRes: ((pd[3] ?? 0) << 8) | (pd[4] ?? 0),
    selRes: pd[5] ?? 0,
    uid: pd.slice(7, 7 + idLength),
  };
}

/** InRelease status byte: 0x00 is success, otherwise an error code (§7.1). */
export function parseInRelease(pd: Uint8Array): number {
  expect(pd, Command.InRelease, "InRelease", 2);
  return pd[1] ?? 0;
}

export function firmwareVersionResponse(v: FirmwareVersion = PN532_V1_6): Uint8Array {
  return Uint8Array.of(responseCode(Command.GetFirmwareVersion), v.ic, v.ver, v.rev, v.support);
}

export function samConfigurationResponse(): Uint8Array {
  return Uint8Array.of(responseCode(Command.SAMConfiguration));
}

export function rfConfigurationResponse(): Uint8Array {
  return Uint8Array.of(responseCode(Command.RFConfiguration));
}

export function inListPassiveTargetResponse(target: PassiveTarget | null): Uint8Array {
  const code = responseCode(Command.InListPassiveTarget);
  if (!target) return Uint8Array.of(code, 0x00);
  const { uid } = target;
  if (uid.length !== 4 && uid.length !== 7 && uid.length !== 10) {
    throw new Pn532ProtocolError(`a Type A UID is 4, 7 or 10 bytes, got ${uid.length}`);
  }
  return Uint8Array.of(
    code,
    0x01,
    target.tg,
    (target.sensRes >> 8) & 0xff,
    target.sensRes & 0xff,
    target.selRes,
    uid.length,
    ...uid,
  );
}

export function inReleaseResponse(status = 0x00): Uint8Array {
  return Uint8Array.of(responseCode(Command.InRelease), status);
}

// ---- UIDs ------------------------------------------------------------------

/** One byte as two upper-case hex digits. */
export function hex(byte: number): string {
  return byte.toString(16).toUpperCase().padStart(2, "0");
}

/** Upper-case hex, as the daemon sees card UIDs. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += hex(b);
  return s;
}

/** Parses a card UID given as hex (spaces, colons and dashes allowed); 4, 7 or 10 bytes. */
export function parseUid(text: string): Uint8Array {
  const clean = text.replace(/[\s:-]/g, "");
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(clean)) {
    throw new Pn532ProtocolError(`card UID must be hex bytes (e.g. "04A1B2C3"), got "${text}"`);
  }
  const bytes = Uint8Array.from(clean.match(/../g) ?? [], (h) => Number.parseInt(h, 16));
  if (bytes.length !== 4 && bytes.length !== 7 && bytes.length !== 10) {
    throw new Pn532ProtocolError(`card UID must be 4, 7 or 10 bytes, got ${bytes.length} ("${text}")`);
  }
  return bytes;
}

/** A UID as it may appear in logs: only its last four hex digits. */
export function abbreviateUid(uid: string): string {
  return `…${uid.slice(-4)}`;
}
