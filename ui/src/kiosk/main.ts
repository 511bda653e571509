// Entry point of the kiosk bundle: registering the elements is all it takes.
import "./kiosk-app.ts";
