import { fileURLToPath } from "node:url";

/** Folder of the built kiosk UI (index.html + app.js), made by `npm run build -w ui`. */
export const kioskDist = fileURLToPath(new URL("./dist/kiosk/", import.meta.url));
