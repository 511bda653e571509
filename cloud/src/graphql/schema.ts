/**
 * The GraphQL schema (SDL) of /api/graphql. Every type is a view the REST
 * API already answers, with the same field names; lists that page follow the
 * REST convention: `limit` and `before` (the previous page's `next`) in,
 * `{ items, next }` out, and a cursor of one door works in the other.
 * The permission each field needs is in its description.
 */
export const typeDefs = /* GraphQL */ `
  "Any JSON value (the same object REST answers for that field)."
  scalar JSON

  type Query {
    "The caller, as the token says (any role)."
    me: Me!
    "The sites the token may touch (fleet:read)."
    sites: [Site!]!
    "One site (fleet:read, of the token's sites)."
    site(id: ID!): Site
    """
    The fleet overview, a page as GET /api/v1/devices answers it (fleet:read). site: as REST, required for a
    token of several sites; sort: device, status or since; search: part of the device id or of its site's id or name.
    """
    devices(site: ID, online: Boolean, search: String, sort: String, limit: Int = 100, before: String): FleetPage!
    "One device (fleet:read)."
    device(site: ID!, id: ID!): Device
    "Check-ins, newest first, as GET /api/v1/checkins (fleet:read)."
    checkins(site: ID, device: ID, limit: Int = 50, before: String): CheckinPage!
    "The alerts firing now, as GET /api/v1/alerts/active (fleet:read)."
    activeAlerts(site: ID): [Alert!]!
    "What kiosks journaled (staff calls, journal recoveries), newest first, as GET /api/v1/alerts (fleet:read)."
    alertHistory(site: ID, device: ID, limit: Int = 50): [JournaledAlert!]!
    "Conflicts found across kiosks, as GET /api/v1/conflicts (fleet:read); default window: the 7 days before until."
    conflicts(site: ID, kind: String, since: String, until: String, limit: Int = 100): [Conflict!]!
    "A site's wallets by member id (money:read)."
    wallets(site: ID!, limit: Int = 50, before: String): WalletPage!
    "One wallet (money:read)."
    wallet(site: ID!, member: ID!): Wallet
    "A site's ledger entries, newest first (money:read)."
    ledger(site: ID!, kind: String, limit: Int = 50, before: String): LedgerPage!
    "A site's payments (purchases), newest first (money:read)."
    payments(site: ID!, limit: Int = 50, before: String): LedgerPage!
    "One payment with its refunds (money:read)."
    payment(id: ID!): Payment
  }

  type Mutation {
    "Sends a command to a kiosk and waits up to waitSeconds for its result, as POST .../commands (fleet:operate)."
    sendCommand(
      site: ID!
      device: ID!
      command: String!
      args: JSON
      expiresInSeconds: Int = 600
      waitSeconds: Float = 10
    ): Command!
    "Resolves a staff-called, journal-rolled-back or ledger-exception alert by hand (fleet:operate)."
    resolveAlert(key: ID!): Alert!
    "Refunds a payment (all that is left, or amount) under an idempotency key, as POST /api/v1/payments/{id}/refunds (money:write)."
    refundPayment(id: ID!, amount: Int, reason: String!, idempotencyKey: String!): RefundResult!
  }

  type Subscription {
    "Events committed from now on (the live feed), of the token's sites and of the types its role may read."
    live(site: ID, types: [String!]): LiveEvent!
  }

  type Me {
    username: String!
    role: String!
    "null: every site."
    sites: [ID!]
    permissions: [String!]!
  }

  type Site {
    id: ID!
    name: String!
    timezone: String!
    currency: String!
    devices(online: Boolean, search: String, sort: String, limit: Int = 100, before: String): FleetPage!
    checkins(device: ID, limit: Int = 50, before: String): CheckinPage!
    activeAlerts: [Alert!]!
    conflicts(kind: String, since: String, until: String, limit: Int = 100): [Conflict!]!
    "money:read"
    wallets(limit: Int = 50, before: String): WalletPage!
    "money:read"
    ledger(kind: String, limit: Int = 50, before: String): LedgerPage!
  }

  type FleetPage {
    items: [Device!]!
    next: String
  }

  "A kiosk as the fleet overview shows it (read-models/fleet.ts), and what it links to."
  type Device {
    site: ID!
    id: ID!
    "online, offline or unknown (never heard of since the presence store started)."
    state: String!
    "When the device last said anything."
    lastSeen: String
    "Since when it is in state."
    statusAt: String
    version: String
    bootedAt: String
    "The kiosk's offline payment exposure from its telemetry (null: never reported)."
    payments: JSON
    ackedSeq: Int!
    inRegistry: Boolean!
    enrolment: Enrolment
    "The device's time of its newest telemetry in the database (null: none yet)."
    telemetryAt: String
    backlog: Int
    "How long the oldest unacked entry has waited (0: none)."
    ackLatencySeconds: Float
    reader: String
    printer: String
    paper: String
    mode: String
    storage: String
    "Desired config fields not in force on the device."
    drift: [String!]!
    desiredConfigVersion: Int
    reportedConfigVersion: Int
    "Online/offline transitions, newest first (the last 50)."
    statusHistory: [StatusChange!]!
    "The newest telemetry report (null: none yet)."
    telemetry: LatestTelemetry
    "Reader, printer and GPIO as the newest telemetry reports them (null: no telemetry yet)."
    peripherals: Peripherals
    "Desired and reported configuration and their drift (null: no configuration service here)."
    config: DeviceConfig
    "The command audit, newest first (null: no command service here)."
    commands(limit: Int = 50, before: String): CommandPage
    checkins(limit: Int = 50, before: String): CheckinPage!
    activeAlerts: [Alert!]!
  }

  type StatusChange {
    state: String!
    at: String!
    session: Int
    version: String
  }

  type Enrolment {
    keyFingerprint: String
    enrolledAt: String!
    rotatedAt: String
    revokedAt: String
  }

  type LatestTelemetry {
    receivedAt: String!
    at: String!
    backlog: Int!
    oldestUnackedAgeSeconds: Float
    mode: String
    cpuTemperatureC: Float
    "The whole report, as GET .../telemetry/latest answers it."
    report: JSON!
  }

  type Peripherals {
    reader: String!
    printer: String
    paper: String
    gpio: String
  }

  type DeviceConfig {
    desired: JSON
    reported: JSON
    drift: [String!]!
    neverReported: Boolean!
  }

  type Command {
    id: ID!
    site: ID!
    device: ID!
    command: String!
    args: JSON!
    requestedBy: String
    requestedAt: String!
    expiresAt: String
    "pending, accepted, done, failed, expired or timeout"
    status: String!
    result: JSON
    reason: String
    deliveredAt: String
    answeredAt: String
    updatedAt: String!
  }

  type CommandPage {
    items: [Command!]!
    next: String
  }

  type Checkin {
    id: ID!
    site: ID!
    device: ID!
    seq: Int!
    memberId: ID!
    memberName: String
    credential: String!
    at: String!
    receivedAt: String!
    offline: Boolean!
    replicaVersion: Int!
    "The kiosk it happened at (fleet:read)."
    kiosk: Device
  }

  type CheckinPage {
    items: [Checkin!]!
    next: String
  }

  type Alert {
    key: ID!
    rule: String!
    severity: String!
    state: String!
    site: ID!
    device: ID
    summary: String!
    detail: JSON
    firedAt: String!
    resolvedAt: String
    at: String!
  }

  type JournaledAlert {
    id: ID!
    kind: String!
    site: ID!
    device: ID!
    seq: Int!
    detail: JSON!
    at: String!
    receivedAt: String!
  }

  type Conflict {
    kind: String!
    site: ID!
    device: ID!
    seq: Int!
    entryId: ID!
    memberId: ID!
    at: String!
    receivedAt: String!
    detail: JSON!
  }

  type Wallet {
    site: ID!
    memberId: ID!
    memberName: String
    currency: String!
    "Minor units."
    balance: Int!
    entries: Int!
    offlineBlocked: Boolean!
    updatedAt: String!
    "The wallet's entries, newest first by position (money:read)."
    ledger(limit: Int = 50, before: String): LedgerPage!
  }

  type WalletPage {
    items: [Wallet!]!
    next: String
  }

  type LedgerOrigin {
    device: ID
    seq: Int
    operator: String
  }

  type LedgerEntry {
    id: ID!
    site: ID!
    memberId: ID!
    n: Int!
    "topup, purchase, refund or adjustment"
    kind: String!
    "Signed minor units: credits > 0, debits < 0."
    amount: Int!
    currency: String!
    balanceAfter: Int!
    origin: LedgerOrigin!
    authorization: String
    itemId: String
    refundOf: ID
    note: String
    at: String!
    recordedAt: String!
  }

  type LedgerPage {
    items: [LedgerEntry!]!
    next: String
  }

  type Payment {
    payment: LedgerEntry!
    refunds: [LedgerEntry!]!
    refunded: Int!
    refundable: Int!
  }

  type RefundResult {
    entry: LedgerEntry!
    "true: this key was used before with the same request; this is its first answer again and nothing changed."
    replayed: Boolean!
  }

  type LiveEvent {
    "checkin, payment, device-status, alert or command-result"
    type: String!
    site: ID!
    device: ID
    at: String!
    "The row as the matching REST read shows it."
    data: JSON!
  }
`;
