/** The kiosk daemon under systemd: readiness, watchdog and stopping notifications (sd_notify). */
export { type SystemdNotify, type SystemdNotifyOptions, startSystemdNotify } from "./notify.ts";
