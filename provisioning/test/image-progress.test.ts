/**
 * Progress output: a bar when stderr is a terminal, a line per finished
 * phase when it is not (CI logs, pipes), nothing for the silent one.
 */
import { test } from "uvu";
import * as assert from "uvu/assert";
import { createProgress, MiB, silentProgress } from "../src/progress.ts";

/** Enough of a tty.WriteStream for cli-progress, recording what it draws. */
function fakeStream(isTTY: boolean) {
  const written: string[] = [];
  const stream = {
    isTTY,
    columns: 120,
    write(chunk: string) {
      written.push(String(chunk));
      return true;
    },
    cursorTo: () => true,
    clearLine: () => true,
    clearScreenDown: () => true,
    moveCursor: () => true,
    on: () => stream,
    removeListener: () => stream,
  };
  return { stream: stream as unknown as NodeJS.WriteStream, written };
}

test("not a terminal: one line per finished phase with size and time, nothing while it runs", () => {
  const { stream, written } = fakeStream(false);
  let now = 1_000;
  const progress = createProgress(stream, () => now);
  const phase = progress.phase("copying", 100 * MiB);
  phase.advance(60 * MiB);
  phase.advance(40 * MiB);
  assert.equal(written, []);
  now += 2_500;
  phase.finish();
  assert.equal(written, ["copying: 100 MiB in 2.5 s\n"]);
  const failed = progress.phase("compressing", 10);
  failed.advance(5);
  failed.abort();
  assert.is(written.length, 1, "an aborted phase prints nothing: the error line stands alone");
});

test("a terminal: a bar with the label, MiB done of the total, reaching 100%", () => {
  const { stream, written } = fakeStream(true);
  const progress = createProgress(stream);
  const phase = progress.phase("writing", 64 * MiB);
  phase.advance(16 * MiB);
  phase.advance(48 * MiB);
  phase.finish();
  const drawn = written.join("");
  assert.match(drawn, /writing\s+\[/);
  assert.match(drawn, "100% | 64/64 MiB");
});

test("silent progress takes the calls and prints nothing", () => {
  const phase = silentProgress.phase("copying", 1);
  phase.advance(1);
  phase.finish();
  phase.abort();
});

test.run();
