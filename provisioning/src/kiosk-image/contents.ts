/**
 * What goes into a kiosk image, independent of how it is written: files for
 * the FAT boot partition and the edit to cmdline.txt that makes Raspberry Pi
 * OS run the first-boot script. `image/` writes them into a disk image;
 * this folder decides what they are.
 */

/** One file to put on the boot partition (FAT): `path` is relative to its root, `/`-separated. */
export interface BootFile {
  path: string;
  content: Buffer | string;
}

/** What `paylane-provision image build` was asked for, beyond the base image. */
export interface KioskImageOptions {
  site: string;
  /** The kiosk's device id; unset: the kiosk derives one from its key (`kiosk-<8 hex>`). */
  device?: string;
  /** The cloud API the kiosk enrols with and calls (https:// outside a lab). */
  cloudUrl: string;
  /** The broker the kiosk connects to. */
  mqttUrl: string;
  /** A claim code baked in; unset: the kiosk asks for one on its setup screen. */
  claim?: string;
  /** PEM of a private CA the kiosk trusts for the cloud and broker. */
  cloudCa?: string;
  hostname?: string;
  timezone?: string;
  locale?: string;
  keyboardLayout?: string;
  wifi?: { ssid: string; password: string; country: string };
  /** An SSH public key (one line) allowed to log in as the admin user; unset: SSH stays off. */
  sshAuthorizedKey?: string;
  /** PEM of the Ed25519 public key update bundles must be signed with (docs/kiosk-updates.md); unset: hashes only. */
  updateSigningKey?: string;
  /** The admin login created on first boot (Raspberry Pi OS has no default user). */
  user?: string;
  /** Raspberry Pi OS's overlay file system on the root: the card survives power cuts; the journal must be elsewhere. */
  readOnlyRoot?: boolean;
  /** Reader, printer, terminal and GPIO sections of kiosk.json (docs/kiosk-config.md); unset: a PN532 on /dev/serial0, no printer. */
  hardware?: Record<string, unknown>;
}

/** A component of the image, for the manifest: what it is, its version, and the sha256 of what was written. */
export interface ManifestEntry {
  path: string;
  sha256: string;
  bytes: number;
}

export interface KioskImageContents {
  files: BootFile[];
  /** Takes the base image's cmdline.txt, returns it with the first-boot hook added (idempotent). */
  editCmdline(cmdline: string): string;
  /** Versions of what went in (daemon, Node ABI, native modules, …), recorded in the manifest. */
  versions: Record<string, string>;
}
