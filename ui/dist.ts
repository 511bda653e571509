import { fileURLToPath } from "node:url";

/** Folder of the built kiosk UI (index.html + app.js), made by `npm run build -w ui`. */
export const kioskDist = fileURLToPath(new URL("./dist/kiosk/", import.meta.url));

/** Folder of the built ops dashboard (index.html, app.js, app.css), made by `npm run build -w ui`; the cloud serves it. */
export const dashboardDist = fileURLToPath(new URL("./dist/dashboard/", import.meta.url));
