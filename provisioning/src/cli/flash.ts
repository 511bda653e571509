/**
 * `paylane-provision flash`: writes a kiosk image to an SD card (or a file)
 * with a progress bar, then reads it back and verifies its SHA-256
 * (flash/flash.ts). Refuses the system disk, mounted disks, partitions,
 * cards too small and, without --force, disks that are not removable.
 */
import type { Command } from "commander";
import { flashImage } from "../flash/flash.ts";
import { createProgress, mib } from "../progress.ts";

const EXAMPLES = `
Examples:
  # find the card (RM 1 = removable), then write and verify the image
  $ lsblk -d -o NAME,SIZE,RM,MODEL
  $ sudo paylane-provision flash --image kiosk-demo.img.xz --device /dev/sdb

  # to a file, e.g. for a virtual machine
  $ paylane-provision flash --image kiosk-demo.img.xz --device kiosk-demo.raw

The image may be raw or xz-compressed. The whole disk is overwritten; writing to a disk needs root or the
disk group. Nothing on this machine may have the card mounted (unmount it: udisksctl unmount -b /dev/sdb1).`;

interface FlashFlags {
  image: string;
  device: string;
  force: boolean;
}

export function flashCommand(program: Command): void {
  program
    .command("flash")
    .description(
      "Writes a kiosk image (raw or .xz) to an SD card or a file with a progress bar, syncs it, then reads it back " +
        "and verifies its SHA-256.",
    )
    .requiredOption("--image <file>", "the kiosk image (from image build), .img or .img.xz")
    .requiredOption("--device <disk-or-file>", "a whole disk such as /dev/sdb or /dev/mmcblk0, or a file")
    .option("--force", "also write a disk the kernel does not call removable (never the system disk)", false)
    .addHelpText("after", EXAMPLES)
    .action(async (flags: FlashFlags) => {
      const result = await flashImage({
        image: flags.image,
        device: flags.device,
        force: flags.force,
        progress: createProgress(),
      });
      process.stdout.write(
        `wrote and verified ${mib(result.bytes)} MiB on ${flags.device}\nsha256 ${result.sha256}  (raw image)\n` +
          (result.manifest ? `the image matches ${result.manifest}\n` : "") +
          (result.target.kind === "disk" ? `${flags.device} can be removed now\n` : ""),
      );
    });
}
