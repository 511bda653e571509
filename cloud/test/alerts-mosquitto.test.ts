/**
 * Alerts end to end on Mosquitto, with the configuration and ACLs generated
 * from the registry (paylane-gateway mosquitto-config): see alerts-scenario.ts.
 */
import { test } from "uvu";
import { alertsScenario } from "./alerts-scenario.ts";

test("alerts reach the retained topic, a retried webhook, PagerDuty and the API without holding back ingest, and survive a restart (Mosquitto)", () =>
  alertsScenario("mosquitto"));

test.run();
