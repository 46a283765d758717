#!/usr/bin/env node
// The CLI entry: registers tsx so the TypeScript sources run as they are, then hands over.
import { register } from "tsx/esm/api";
register();
const { main } = await import("../src/cli/main.ts");
await main(process.argv.slice(2));
