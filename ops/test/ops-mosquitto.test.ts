/**
 * paylane-ops against a real Mosquitto (a private one, configured with the
 * password and ACL files the project generates from the registry): the same
 * suite as on aedes, over MQTT 5.
 */
import { test } from "uvu";
import { opsSuite } from "./support/suite.ts";

opsSuite("mosquitto");
test.run();
