/** What a broker with ACLs refuses an operator, and how paylane-ops says so: on aedes and on Mosquitto. */
import { test } from "uvu";
import { refusalSuite } from "./support/suite.ts";

refusalSuite("aedes");
refusalSuite("mosquitto");
test.run();
