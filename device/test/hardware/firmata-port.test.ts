/** Opening the johnny-five board's Firmata io over our serialport: a missing board is an error event, not a crash. */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { openFirmata } from "../../src/hardware/gpio/firmata-port.ts";

test("a board that is not plugged in reports an error on its io, naming the path", async () => {
  const io = openFirmata("/dev/paylane-no-such-board");
  const errors: Error[] = [];
  await new Promise<void>((resolve) =>
    io.on("error", (err: Error) => {
      errors.push(err);
      resolve();
    }),
  );
  assert.match(errors[0]!.message, /paylane-no-such-board/);
});

test.run();
