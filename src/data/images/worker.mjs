// Entry of an image-loader worker thread. Workers start without the parent's --import flags, so
// this plain-JS file registers tsx (as bin/tunekit.mjs does) before loading the TypeScript body.
import { register } from "tsx/esm/api";

register();
await import("./worker-main.ts");
