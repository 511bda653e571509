/** The TCP SerialLink (the payment terminal's byte pipe) keeps the SerialLink contract the serial drivers rely on. */
import { createServer, type Server, type Socket } from "node:net";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { within } from "../../../test/support/within.ts";
import type { SerialLink } from "../../src/hardware/serial/serial-link.ts";
import { openTcpLink } from "../../src/hardware/serial/tcp-link.ts";

async function listen(): Promise<{ server: Server; port: number; accepted: Promise<Socket> }> {
  const server = createServer();
  const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const addr = server.address();
  return { server, port: typeof addr === "object" && addr ? addr.port : 0, accepted };
}

const closedWith = (link: SerialLink) => new Promise<Error | undefined>((resolve) => link.onClose(resolve));

test("bytes go both ways; closing on purpose reports no error and refuses later writes", async () => {
  const { server, port, accepted } = await listen();
  const link = await openTcpLink({ host: "127.0.0.1", port });
  const peer = await accepted;
  const fromPeer = new Promise<Uint8Array>((resolve) => link.onData(resolve));
  const atPeer = new Promise<Buffer>((resolve) => peer.once("data", resolve));
  await link.write(Uint8Array.of(0x06, 0x00, 0x00));
  assert.equal([...(await within(atPeer, 3000, "bytes at the peer"))], [0x06, 0x00, 0x00]);
  peer.write(Uint8Array.of(0x80, 0x00, 0x00));
  assert.equal([...(await within(fromPeer, 3000, "bytes from the peer"))], [0x80, 0x00, 0x00]);
  const closed = closedWith(link);
  await link.close();
  assert.is(await closed, undefined);
  assert.not.ok(link.isOpen);
  const refused = await link.write(Uint8Array.of(1)).catch((err: Error) => err);
  assert.match((refused as Error).message, /is not open/);
  await link.close();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

test("the peer hanging up is reported as a lost link", async () => {
  const { server, port, accepted } = await listen();
  const link = await openTcpLink({ host: "127.0.0.1", port });
  const closed = closedWith(link);
  (await accepted).end();
  const err = await within(closed, 3000, "the link closing");
  assert.match(err?.message ?? "", /closed the connection/);
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

test("nothing listening rejects; an aborted attempt rejects and leaves nothing open", async () => {
  const { server, port } = await listen();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const refused = await openTcpLink({ host: "127.0.0.1", port }).catch((err: Error) => err);
  assert.match((refused as Error).message, /ECONNREFUSED/);
  const given = new AbortController();
  given.abort();
  const aborted = await openTcpLink({ host: "127.0.0.1", port, signal: given.signal }).catch((err: Error) => err);
  assert.match((aborted as Error).message, /given up/);
});

test.run();
