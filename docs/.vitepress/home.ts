/**
 * The home page's hero and feature cards. They are VitePress frontmatter, but
 * kept here rather than in docs/index.md: biome formats Markdown and does not
 * know frontmatter (it would flatten the YAML), so index.md stays plain
 * Markdown that reads well on GitHub too, and config.ts adds this to its page data.
 */
export const HOME_FRONTMATTER = {
  layout: "home",
  hero: {
    name: "PayLane",
    text: "Walk-up check-in and payment kiosks, and the fleet software behind them",
    tagline:
      "A kiosk decides on its own, online or offline; the cloud commits what it did exactly once, and only then acknowledges it.",
    actions: [
      { theme: "brand", text: "Getting started", link: "/getting-started" },
      { theme: "alt", text: "Architecture", link: "/architecture" },
      { theme: "alt", text: "Due diligence", link: "/due-diligence" },
    ],
  },
  features: [
    {
      title: "Kiosks that work offline",
      details:
        "A Raspberry Pi–class daemon with a SQLite journal decides from its own replica of the site's members, so it answers in the same time with or without the cloud.",
      link: "/durability",
    },
    {
      title: "Exactly once, end to end",
      details:
        "A gap-free seq per kiosk, an inbox keyed (site, device, seq), acks only after the Postgres commit: nothing acknowledged is lost or applied twice.",
      link: "/algorithms",
    },
    {
      title: "Money without card numbers",
      details:
        "A closed-loop wallet ledger with idempotency keys and bounded offline exposure; bank cards only ever touch a certified terminal.",
      link: "/payments",
    },
    {
      title: "A stolen kiosk is assumed",
      details: "Deny-by-default MQTT ACLs, revocation within a second, and nothing a kiosk publishes creates money.",
      link: "/security",
    },
    {
      title: "Operable",
      details:
        "Prometheus metrics with alert rules and runbooks, Grafana dashboards, a live feed, a dashboard, a CLI and Node-RED nodes.",
      link: "/operations",
    },
    {
      title: "Installable by one person",
      details:
        "Turn a stock Raspberry Pi OS image into a kiosk image in one command, flash it with read-back verification, and watch it enrol itself.",
      link: "/installers-guide",
    },
  ],
};
