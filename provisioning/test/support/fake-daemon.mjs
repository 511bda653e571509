// A stand-in for the kiosk daemon in the update tests: a real process started from a release folder that
// answers /healthz (or not). FAKE_DAEMON_MODE picks its behaviour (written into the release's app/mode.json,
// so each release behaves its own way): good | exits (dies at once) | unhealthy (503) | flaps (200 twice, then 503).
// It prints READY <port> once it listens, as the real daemon tells systemd READY=1.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";

const { mode, release } = JSON.parse(readFileSync(new URL("./mode.json", import.meta.url), "utf8"));
if (mode === "exits") {
  console.error(`fake daemon ${release}: cannot start (simulated bad release)`);
  process.exit(1);
}
let answered = 0;
const server = createServer((req, res) => {
  if (req.url !== "/healthz") return res.writeHead(404).end();
  answered += 1;
  const healthy = mode === "good" || (mode === "flaps" && answered <= 2);
  res.writeHead(healthy ? 200 : 503, { "content-type": "application/json" });
  res.end(JSON.stringify({ status: healthy ? "ok" : "down", release }));
});
server.listen(Number(process.env.FAKE_DAEMON_PORT ?? 0), "127.0.0.1", () => {
  console.log(`READY ${server.address().port}`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
// Started by a test's FakeService: gone with the test process, even one killed by a timeout.
if (process.env.FAKE_DAEMON_STDIN_PARENT === "1") process.stdin.on("end", () => process.exit(0)).resume();
