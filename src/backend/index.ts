/**
 * Backend selection. `native` (the C++ addon) when it loaded, else `reference` with one warning
 * naming the cause. `TUNEKIT_BACKEND=reference|native` forces a choice.
 */
import type { Backend } from "./backend.ts";
import { referenceBackend } from "./reference/index.ts";

let current: Backend | null = null;
let nativeCache: { backend: Backend } | { error: string } | null = null;
let warned = false;

async function tryNative(): Promise<{ backend: Backend } | { error: string }> {
  if (nativeCache) return nativeCache;
  try {
    const mod = (await import("./native.ts")) as { loadNativeBackend(): { backend: Backend } | { error: string } };
    nativeCache = mod.loadNativeBackend();
  } catch (e) {
    nativeCache = { error: (e as Error).message };
  }
  return nativeCache;
}

/**
 * Picks the backend once at startup (called by `src/index.ts`). Returns the chosen one.
 * @example await initBackend(); // native if built, else reference
 */
export async function initBackend(name = process.env.TUNEKIT_BACKEND): Promise<Backend> {
  if (name === "reference") return (current = referenceBackend);
  const r = await tryNative();
  if ("backend" in r) return (current = r.backend);
  if (name === "native") throw new Error(`tunekit: TUNEKIT_BACKEND=native but the native backend is unavailable: ${r.error}`);
  if (!warned) {
    warned = true;
    process.emitWarning(`tunekit: native backend unavailable (${r.error}); running on the slower reference backend`);
  }
  return (current = referenceBackend);
}

/** The active backend (reference until `initBackend`/`setBackend` chose another). */
export function backend(): Backend {
  return current ?? referenceBackend;
}

/** Forces a backend (tests run the same suite on each). */
export function setBackend(b: Backend): void {
  current = b;
}

/** Runs `fn` with `b` as the active backend. */
export function withBackend<T>(b: Backend, fn: () => T): T {
  const prev = current;
  current = b;
  try {
    return fn();
  } finally {
    current = prev;
  }
}

export { referenceBackend };
export type { Backend };
