/** Small pieces every page uses: problems, "not allowed", badges, buttons that say they are busy. */
import type { Permission } from "@paylane/protocol";
import type { ComponentChildren } from "preact";
import { ApiError, currentOperator } from "./api.ts";

/** What a failed call means for the person looking at the page. */
export function Problem({ error, what }: { error: unknown; what?: string }) {
  if (!error) return null;
  const e = error instanceof ApiError ? error : new ApiError(0, "Error", String(error));
  if (e.status === 403) {
    return (
      <div class="problem" role="alert">
        <strong>Not allowed.</strong> {e.detail || "Your role may not see this."}
      </div>
    );
  }
  return (
    <div class="problem" role="alert">
      <strong>{what ? `Could not ${what}: ` : ""}</strong>
      {e.title}
      {e.detail ? ` — ${e.detail}` : ""}
    </div>
  );
}

const ROLES_WITH: Record<Permission, string> = {
  "fleet:read": "viewer, operator, finance or admin",
  "fleet:operate": "operator or admin",
  "money:read": "finance or admin",
  "money:write": "finance or admin",
  admin: "admin",
};

/** The page a role may not open (typed URL or old link): says so, instead of an empty page. */
export function NotAllowed({ permission }: { permission: Permission }) {
  const me = currentOperator();
  return (
    <section class="page" aria-labelledby="not-allowed">
      <h1 id="not-allowed">Not allowed</h1>
      <p class="problem" role="alert">
        This page needs the <code>{permission}</code> permission, which the {ROLES_WITH[permission]} role has. You are
        signed in as <strong>{me?.username}</strong> with the <strong>{me?.role}</strong> role.
      </p>
      <p>
        <a href="#/fleet">Back to the fleet</a>
      </p>
    </section>
  );
}

export function Badge({ tone, children }: { tone: "ok" | "warn" | "bad" | "muted"; children: ComponentChildren }) {
  return <span class={`badge ${tone}`}>{children}</span>;
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty">{children}</p>;
}
