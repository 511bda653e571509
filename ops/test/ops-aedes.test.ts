/** paylane-ops against the PayLane gateway (aedes, MQTT 3.1.1, the registry's operators and ACLs). */
import { test } from "uvu";
import { opsSuite } from "./support/suite.ts";

opsSuite("aedes");
test.run();
