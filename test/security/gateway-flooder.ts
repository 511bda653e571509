/**
 * The attacker of gateway-flood.test.ts, in its own process so its sockets
 * do not share an event loop with the kiosks it competes with:
 *
 *   gateway-flooder.ts <port> <attempts> <in-flight> <local address> <site>
 *
 * Each attempt, from <local address> (a loopback address), sends a CONNECT
 * naming one of the site's 20 kiosks with a wrong password, the expensive
 * case for a gateway (a scrypt check), and waits for the gateway to close
 * it, hanging up itself after 3 s. The loop is bounded in count and in
 * sockets open at once. Prints `under way` after the 100th attempt starts,
 * and a JSON summary at the end.
 */
import { connect } from "node:net";
import { connectPacket } from "./gateway-cli.ts";

const [portArg, attemptsArg, inFlightArg, localAddressArg, siteArg] = process.argv.slice(2, 7);
const port = Number(portArg);
const attempts = Number(attemptsArg);
const inFlightMax = Number(inFlightArg);
const localAddress = localAddressArg ?? "";
const site = siteArg ?? "";
if (!port || !attempts || !inFlightMax || !localAddress || !site) {
  process.stderr.write("usage: gateway-flooder.ts <port> <attempts> <in-flight> <local address> <site>\n");
  process.exit(2);
}
const HANG_UP_MS = 3000;

function attempt(i: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port, localAddress });
    socket.on("error", () => {});
    socket.once("connect", () => {
      const device = `k${(i % 20) + 1}`;
      socket.write(connectPacket(`paylane:${site}:${device}`, `${site}/${device}`, `wrong-${i}`));
    });
    const hangUp = setTimeout(() => socket.destroy(), HANG_UP_MS);
    socket.once("close", () => {
      clearTimeout(hangUp);
      resolve();
    });
  });
}

const started = performance.now();
const inFlight = new Set<Promise<void>>();
let closed = 0;
for (let i = 0; i < attempts; i++) {
  const p: Promise<void> = attempt(i).then(() => {
    closed++;
    inFlight.delete(p);
  });
  inFlight.add(p);
  if (i + 1 === Math.min(100, attempts)) process.stdout.write("under way\n");
  if (inFlight.size >= inFlightMax) await Promise.race(inFlight);
}
await Promise.all(inFlight);
process.stdout.write(`${JSON.stringify({ attempts, closed, ms: Math.round(performance.now() - started) })}\n`);
