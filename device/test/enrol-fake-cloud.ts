/**
 * A small stand-in for the cloud's enrolment endpoints (protocol/src/enrolment.ts),
 * on a real HTTP server on port 0: it checks signatures and secrets like the
 * real one, and can be told to fail in the ways a kiosk must survive.
 */
import { createPublicKey, verify } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  type EnrolRefusal,
  type EnrolRequest,
  EnrolRequestSchema,
  enrolSigningInput,
  parseClaimCode,
  RotateRequestSchema,
  rotateSigningInput,
  verifySecret,
} from "@paylane/protocol";

export interface Enrolled {
  site: string;
  device: string;
  publicKey: string;
  secretHash: string;
  claim: string;
}

export class FakeCloud {
  readonly requests: { path: string; body: unknown; authorization?: string }[] = [];
  /** Claim digits that are valid, and for which site. */
  readonly claims = new Map<string, string>();
  readonly enrolled = new Map<string, Enrolled>();
  /** The next enrolments are refused with this reason. */
  refuse: EnrolRefusal | undefined;
  /** This many requests get 503 before the next is served. */
  failNext = 0;
  /** This many enrolments are registered, then the connection is cut before the answer. */
  dropAnswerNext = 0;
  /** This many rotations are applied, then the connection is cut before the answer. */
  dropRotateAnswerNext = 0;
  #server: Server | undefined;

  get url(): string {
    return `http://127.0.0.1:${(this.#server!.address() as AddressInfo).port}`;
  }

  get enrolRequests(): EnrolRequest[] {
    return this.requests.filter((r) => r.path === "/api/v1/enrol").map((r) => r.body as EnrolRequest);
  }

  async start(): Promise<void> {
    this.#server = createServer((req, res) => void this.#handle(req, res));
    await new Promise<void>((resolve) => this.#server!.listen(0, "127.0.0.1", resolve));
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString();
    const body = text ? JSON.parse(text) : undefined;
    const path = req.url ?? "";
    this.requests.push({ path, body, authorization: req.headers.authorization });
    const send = (status: number, json: unknown) => {
      res.writeHead(status, { "content-type": status >= 400 ? "application/problem+json" : "application/json" });
      res.end(JSON.stringify(json));
    };
    const refuse = (status: number, reason: EnrolRefusal) =>
      send(status, { title: "Enrolment refused", status, detail: `refused: ${reason}`, reason });
    if (path === "/healthz") return send(200, { status: "ok" });
    if (this.failNext > 0) {
      this.failNext--;
      return send(503, { title: "Service unavailable", status: 503, detail: "try again shortly" });
    }
    if (path === "/api/v1/enrol" && req.method === "POST") {
      const parsed = EnrolRequestSchema.safeParse(body);
      if (!parsed.success) return send(400, { title: "Invalid request", status: 400, detail: parsed.error.message });
      const r = parsed.data;
      if (this.refuse) return refuse(403, this.refuse);
      const { signature, ...unsigned } = r;
      const key = createPublicKey({ key: Buffer.from(r.publicKey, "base64url"), format: "der", type: "spki" });
      if (!verify(null, enrolSigningInput(unsigned), key, Buffer.from(signature, "base64url")))
        return refuse(400, "bad-signature");
      const code = parseClaimCode(r.claim);
      if (!code.ok || !this.claims.has(code.digits)) return refuse(403, "claim-unknown");
      if (this.claims.get(code.digits) !== r.site) return refuse(403, "claim-other-site");
      const used = [...this.enrolled.values()].find((e) => e.claim === code.digits);
      // The same key again: a retry after a lost answer is answered the same (with the secret it sent first).
      if (used && used.publicKey !== r.publicKey) return refuse(409, "claim-used");
      if (!used) this.enrolled.set(`${r.site}/${r.device}`, { ...r, claim: code.digits, secretHash: r.secretHash });
      const answer = { site: r.site, device: r.device, username: `${r.site}/${r.device}`, enrolledAt: r.at };
      if (this.dropAnswerNext > 0) {
        this.dropAnswerNext--;
        res.socket?.destroy();
        return;
      }
      return send(201, answer);
    }
    if (path === "/api/v1/enrol/rotate" && req.method === "POST") {
      const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? "");
      const [user, secret] = basic ? Buffer.from(basic[1]!, "base64").toString().split(/:(.*)/s) : [];
      const device = user ? this.enrolled.get(user) : undefined;
      if (!device || !secret || !(await verifySecret(secret, device.secretHash)))
        return send(401, { title: "Unauthorized", status: 401, detail: "bad credentials" });
      const parsed = RotateRequestSchema.safeParse(body);
      if (!parsed.success) return send(400, { title: "Invalid request", status: 400, detail: parsed.error.message });
      const { signature, ...unsigned } = parsed.data;
      const key = createPublicKey({ key: Buffer.from(device.publicKey, "base64url"), format: "der", type: "spki" });
      if (
        !verify(
          null,
          rotateSigningInput(device.site, device.device, unsigned),
          key,
          Buffer.from(signature, "base64url"),
        )
      )
        return refuse(400, "bad-signature");
      device.secretHash = parsed.data.secretHash;
      if (this.dropRotateAnswerNext > 0) {
        this.dropRotateAnswerNext--;
        res.socket?.destroy();
        return;
      }
      return send(200, { rotatedAt: parsed.data.at });
    }
    send(404, { title: "Not found", status: 404 });
  }
}
