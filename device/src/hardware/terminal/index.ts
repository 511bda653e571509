/** Card payment: the terminal interface, the ZVT driver, the simulated ZVT terminal and the config that picks one. */
export * from "./factory.ts";
export * from "./terminal.ts";
export { ZVT_PORT, type ZvtCounters, ZvtTerminal, type ZvtTerminalOptions } from "./zvt.ts";
export * from "./zvt-simulator.ts";
