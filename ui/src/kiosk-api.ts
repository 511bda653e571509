/**
 * Moved: the kiosk's local API contract lives in protocol/src/kiosk-api.ts
 * (`@paylane/protocol/kiosk-api`). This re-export goes once nothing imports
 * `@paylane/ui/kiosk-api` any more.
 */
export * from "@paylane/protocol/kiosk-api";
