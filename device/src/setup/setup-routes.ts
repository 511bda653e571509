/**
 * The setup API's routes (protocol/src/setup-api.ts), served by setup mode
 * and, once enrolled, by the daemon's local API (diagnostics stay useful).
 */
import { problemResponse } from "@paylane/protocol";
import { ClaimEntrySchema, type Diagnostics, type SetupState, setupApi } from "@paylane/protocol/setup-api";
import { Hono } from "hono";

export interface SetupRouteHandlers {
  state: () => SetupState;
  /**
   * A code typed or scanned: starts an enrolment (202), or says why not in
   * one line (`invalid` → 400, `busy` → 409). Absent once enrolled: 409.
   */
  claim?: (code: string) => { ok: true } | { ok: false; status: 400 | 409; title: string; detail: string };
  diagnostics: () => Promise<Diagnostics>;
  testReceipt: () => Promise<{ printed: boolean; detail: string }>;
}

export function setupRoutes(h: SetupRouteHandlers): Hono {
  const app = new Hono();
  app.get(setupApi.state.path, (c) => c.json(h.state()));
  app.post(setupApi.claim.path, async (c) => {
    if (!h.claim)
      return problemResponse({
        title: "Already enrolled",
        status: 409,
        detail: "this kiosk is enrolled: it needs no claim code",
      });
    let json: unknown;
    try {
      json = JSON.parse(await c.req.text());
    } catch {
      return problemResponse({
        title: "Invalid JSON",
        status: 400,
        detail: 'body: expected {"code": "12345-67890-12345-67894"}',
      });
    }
    const body = ClaimEntrySchema.safeParse(json);
    if (!body.success)
      return problemResponse({
        title: "Invalid claim code",
        status: 400,
        detail: "code: expected a claim code of 20 digits",
      });
    const started = h.claim(body.data.code);
    if (!started.ok) return problemResponse({ title: started.title, status: started.status, detail: started.detail });
    return c.json(h.state(), 202);
  });
  app.get(setupApi.diagnostics.path, async (c) => c.json(await h.diagnostics()));
  app.post(setupApi.testReceipt.path, async (c) => c.json(await h.testReceipt()));
  return app;
}
