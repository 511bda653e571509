/** The members the kill -9 test's daemon checks in (test/support/crash-daemon-child.ts), by booking code. */
export const CRASH_MEMBERS = 2000;
export const crashMemberCode = (i: number) => `C${String(i).padStart(4, "0")}`;
export const crashMembers = () =>
  Array.from({ length: CRASH_MEMBERS }, (_, i) => ({
    id: `crash-${i}`,
    name: `Crash member ${i}`,
    cardUid: null,
    code: crashMemberCode(i),
    status: "active" as const,
  }));
