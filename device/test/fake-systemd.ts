/**
 * A stand-in for systemd's side of sd_notify: a unix datagram socket bound by
 * python3 (Node cannot bind one), collecting what the daemon sends through
 * the real systemd-notify binary.
 */
import { type ChildProcess, spawn } from "node:child_process";

// Prints each datagram it receives as one JSON line (fds passed along are dropped, which ends systemd-notify's wait).
const RECEIVER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("bound", flush=True)
while True:
    data = s.recv(65536)
    print(json.dumps(data.decode()), flush=True)
`;

export class FakeSystemd {
  readonly messages: string[] = [];
  #child: ChildProcess | undefined;

  static async start(path: string): Promise<FakeSystemd> {
    const fake = new FakeSystemd();
    const child = spawn("python3", ["-c", RECEIVER, path], { stdio: ["ignore", "pipe", "inherit"] });
    fake.#child = child;
    await new Promise<void>((resolve, reject) => {
      let buffer = "";
      child.on("error", reject);
      child.stdout?.on("data", (b: Buffer) => {
        buffer += b;
        let newline = buffer.indexOf("\n");
        while (newline >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (line === "bound") resolve();
          else fake.messages.push(JSON.parse(line) as string);
          newline = buffer.indexOf("\n");
        }
      });
    });
    return fake;
  }

  /** Waits (polling, with a deadline) for a message holding `assignment`; returns how many did. */
  async received(assignment: string, count = 1): Promise<void> {
    const deadline = Date.now() + 10_000;
    const matching = () => this.messages.filter((m) => m.split("\n").includes(assignment)).length;
    while (matching() < count) {
      if (Date.now() > deadline) {
        throw new Error(`no ${count} x ${assignment} on the socket; got ${JSON.stringify(this.messages)}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  stop(): void {
    this.#child?.kill();
  }
}
