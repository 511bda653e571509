/** Timers are injected so tests drive time instead of sleeping on it (one definition, in protocol/, for every part). */
export { realTimers, type Timers } from "@paylane/protocol";
