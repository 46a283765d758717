/** The op table's public surface: primitives, views, composites. */
export * from "./elementwise.ts";
export * from "./reduce.ts";
export * from "./view.ts";
export * from "./linalg.ts";
export * from "./indexing.ts";
export * from "./conv.ts";
export * from "./functional.ts";
export { OPS } from "./table.ts";
import "./methods.ts";
export * from "./lora.ts";
