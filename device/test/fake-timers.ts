/** The shared fake clock (test/support/fake-timers.ts), where device tests have always imported it from. */
export * from "../../test/support/fake-timers.ts";
