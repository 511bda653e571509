/**
 * `paylane-provision claim create` and `device …` send an admin token, and
 * get claim codes back. The kiosk refuses to send a claim code over plain
 * http:// anywhere but loopback; the installer's CLI sent both to any
 * http:// address it was given (the cloud's default port is plain HTTP), so
 * anyone on the path read the admin token and every new code.
 */
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { networkInterfaces } from "node:os";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { callCloud, resolveLogin } from "../../provisioning/src/cloud/admin-client.ts";

const TOKEN = "eyJhbGciOiJIUzI1NiJ9.the-admins-token.signature";

/** An address of this machine other than loopback, where a listener stands in for anyone on the path. */
function networkAddress(): string {
  const found = Object.values(networkInterfaces())
    .flat()
    .find((a) => a && !a.internal && a.family === "IPv4");
  // No network here: a documentation address (nothing answers; the refusal must come first anyway).
  return found?.address ?? "192.0.2.1";
}

test("the admin token and claim codes are not sent over plain http:// to a network address", async () => {
  const seen: string[] = [];
  const eavesdropper = createServer((req, res) => {
    seen.push(req.headers.authorization ?? "");
    res.writeHead(201, { "content-type": "application/json" });
    res.end(JSON.stringify({ claims: [{ id: "x", code: "12345-67890-12345-67894", expiresAt: "" }] }));
  });
  eavesdropper.listen(0, "0.0.0.0");
  await once(eavesdropper, "listening");
  const port = (eavesdropper.address() as AddressInfo).port;
  try {
    const cloudUrl = `http://${networkAddress()}:${port}`;
    const outcome = await resolveLogin({ cloudUrl }, { PAYLANE_TOKEN: TOKEN })
      .then((login) => callCloud(login, "POST", "/api/v1/claims", { site: "venue-1" }))
      .then(
        () => "sent",
        (err: Error) => err.message,
      );
    assert.equal(seen, [], "nothing reached the listener");
    assert.match(outcome, /https:\/\//, `refused in one line that says to use https: ${outcome}`);
    assert.not.match(outcome, TOKEN);
  } finally {
    eavesdropper.close();
  }
});

test("loopback stays allowed over http (npm start's cloud, an SSH tunnel)", async () => {
  const login = await resolveLogin({ cloudUrl: "http://127.0.0.1:8080" }, { PAYLANE_TOKEN: TOKEN });
  assert.is(login.cloudUrl, "http://127.0.0.1:8080");
  const https = await resolveLogin({ cloudUrl: "https://cloud.example" }, { PAYLANE_TOKEN: TOKEN });
  assert.is(https.cloudUrl, "https://cloud.example");
});

test.run();
