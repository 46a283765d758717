/** Imports every architecture so it registers itself; re-exports the registry. */
export * from "./registry.ts";
import "./bert.ts";
