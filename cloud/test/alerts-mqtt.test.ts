/**
 * Alerts end to end on the aedes gateway: see alerts-scenario.ts.
 */
import { test } from "uvu";
import { alertsScenario } from "./alerts-scenario.ts";

test("alerts reach the retained topic, a retried webhook, PagerDuty and the API without holding back ingest, and survive a restart (aedes)", () =>
  alertsScenario("aedes"));

test.run();
