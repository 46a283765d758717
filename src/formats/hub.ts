/**
 * Resolve a model reference to a local folder: a path stays a path, `hf:owner/name[@revision]`
 * is downloaded from the Hugging Face Hub into the standard HF cache and its snapshot folder is
 * returned, so `transformers` and tunekit share one cache.
 *
 * Cache layout (as `huggingface_hub` writes it):
 * ```
 * $HF_HUB_CACHE/models--owner--name/
 *   blobs/<sha256 or git oid>            file contents, named by hash
 *   snapshots/<commit>/<file>            relative symlinks into blobs/
 *   refs/<revision>                      the commit a branch/tag pointed to at download time
 * ```
 * Repo metadata comes from `@huggingface/hub` (`modelInfo`, `listFiles`); the file transfer is
 * done here with `fetch` because it must resume (`Range`) from `<blob>.incomplete` and report
 * progress, which the library's `downloadFileToCacheDir` does not.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, mkdir, open, readFile, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { getHFHubCachePath, HubApiError, listFiles, modelInfo } from "@huggingface/hub";
import { HubError } from "./errors.ts";

/** Files fetched from a model repo by default (top level only), whichever exist. */
export const DEFAULT_FILES = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "preprocessor_config.json",
  "adapter_config.json",
];

/** The default filter: the JSON files above plus every `*.safetensors` and its index. */
export function isDefaultFile(path: string): boolean {
  return DEFAULT_FILES.includes(path) || path.endsWith(".safetensors") || path.endsWith(".safetensors.index.json");
}

/** Progress of one `resolveModelPath` download, in bytes. */
export interface DownloadProgress {
  repo: string;
  file: string;
  /** bytes received so far over all files (resumed bytes count as received) */
  bytes: number;
  /** bytes of all files that had to be fetched */
  total: number;
}

export interface ResolveOptions {
  /** Cache root; default `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`. */
  cacheDir?: string;
  /** Hub endpoint; default `$HF_ENDPOINT`, else https://huggingface.co. */
  hubUrl?: string;
  /** Access token; default `$HF_TOKEN`. */
  token?: string;
  /** Never touch the network; default from `$HF_HUB_OFFLINE`. */
  offline?: boolean;
  /** Called as bytes arrive. Without it a progress line is drawn on stderr when stderr is a TTY. */
  onProgress?: (p: DownloadProgress) => void;
  /** Which top-level repo files to fetch; default {@link isDefaultFile}. */
  include?: (path: string) => boolean;
  /** Custom fetch (proxies, tests). */
  fetch?: typeof fetch;
}

const COMMIT_RE = /^[0-9a-f]{40}$/;
const ETAG_RE = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;
const NAME_RE = /^[A-Za-z0-9][\w.-]{0,95}$/;

/**
 * Parse `hf:owner/name[@revision]`; returns null for anything without the `hf:` prefix.
 *
 * @example
 * ```ts
 * parseHubSpec("hf:openai-community/gpt2@main"); // { repo: "openai-community/gpt2", revision: "main" }
 * ```
 */
export function parseHubSpec(spec: string): { repo: string; revision: string } | null {
  if (!spec.startsWith("hf:")) return null;
  const body = spec.slice(3);
  const at = body.indexOf("@");
  const repo = at < 0 ? body : body.slice(0, at);
  const revision = at < 0 ? "main" : body.slice(at + 1);
  const parts = repo.split("/");
  if (
    parts.length > 2 ||
    !parts.every((p) => NAME_RE.test(p) && !p.includes("--") && !p.includes("..") && !p.endsWith(".git"))
  ) {
    throw new HubError(repo || spec, "bad_repo_id", `"${spec}" is not hf:owner/name[@revision]`);
  }
  const segs = revision.split("/");
  if (revision.length > 255 || !segs.every((s) => /^[\w.-]+$/.test(s) && s !== "." && s !== "..")) {
    throw new HubError(repo, "bad_repo_id", `bad revision "${revision}" in "${spec}"`);
  }
  return { repo, revision };
}

function truthy(v: string | undefined): boolean {
  return v !== undefined && ["1", "on", "yes", "true"].includes(v.trim().toLowerCase());
}

/**
 * Resolve a model reference to a local folder.
 *
 * - a local folder path is returned as given;
 * - `hf:owner/name[@revision]` (revision defaults to `main`) fetches config, safetensors weights
 *   (and index), tokenizer and processor files into the HF cache and returns
 *   `.../models--owner--name/snapshots/<commit>`. Interrupted downloads resume. Offline
 *   (`HF_HUB_OFFLINE=1`) or when the hub cannot be reached, the cached snapshot is used.
 *
 * @example
 * ```ts
 * const dir = await resolveModelPath("hf:HuggingFaceTB/SmolLM-135M");
 * const weights = await loadSafetensorsDir(dir);
 * ```
 */
export async function resolveModelPath(pathOrId: string, opts: ResolveOptions = {}): Promise<string> {
  const spec = parseHubSpec(pathOrId);
  if (!spec) {
    const s = await stat(pathOrId).catch(() => null);
    if (!s?.isDirectory()) {
      throw new HubError(pathOrId, "not_found", "no such folder (use hf:owner/name for a Hugging Face Hub model)");
    }
    return pathOrId;
  }
  const { repo, revision } = spec;
  const folder = join(opts.cacheDir ?? getHFHubCachePath(), `models--${repo.replaceAll("/", "--")}`);
  const hubUrl = (opts.hubUrl ?? process.env.HF_ENDPOINT ?? "https://huggingface.co").replace(/\/+$/, "");
  const offline = opts.offline ?? truthy(process.env.HF_HUB_OFFLINE);

  if (offline) {
    const cached = await cachedSnapshot(folder, revision);
    if (cached) return cached;
    throw new HubError(
      repo,
      "not_cached",
      `offline (HF_HUB_OFFLINE) and revision "${revision}" is not in the cache ${folder}`,
    );
  }
  const token = opts.token ?? process.env.HF_TOKEN ?? process.env.HUGGING_FACE_HUB_TOKEN;
  const ctx: Ctx = { repo, hubUrl, folder, fetch: authFetch(opts.fetch ?? fetch, token), hasToken: !!token };

  let commit: string;
  let files: RemoteFile[];
  try {
    ({ commit, files } = await listRemote(ctx, revision, opts.include ?? isDefaultFile));
  } catch (e) {
    if (!isNetworkFailure(e)) throw toHubError(ctx, revision, e);
    const cached = await cachedSnapshot(folder, revision);
    if (cached) return cached;
    throw new HubError(
      repo,
      "not_cached",
      `cannot reach ${hubUrl} (${describe(e)}) and revision "${revision}" is not in the cache ${folder}`,
      { cause: e },
    );
  }
  await downloadAll(ctx, commit, files, opts.onProgress ?? (process.stderr.isTTY ? ttyProgress() : undefined));
  // Written last, so a ref only ever points at a complete snapshot.
  if (revision !== commit) {
    await mkdir(dirname(join(folder, "refs", revision)), { recursive: true });
    await writeFile(join(folder, "refs", revision), commit);
  }
  return join(folder, "snapshots", commit);
}

interface Ctx {
  repo: string;
  hubUrl: string;
  folder: string;
  fetch: typeof fetch;
  hasToken: boolean;
}

interface RemoteFile {
  path: string;
  size: number;
  /** blob name in the cache: the LFS sha256, else the git blob oid */
  etag: string;
  /** how to check the bytes: sha256 of the content (LFS) or git's blob sha1 */
  hash: "sha256" | "git-sha1" | null;
}

/** The snapshot folder cached for `revision` (a commit, or a ref name), if any. */
async function cachedSnapshot(folder: string, revision: string): Promise<string | null> {
  let commit = revision;
  if (!COMMIT_RE.test(revision)) {
    // refs/<revision> is a file we did not necessarily write: trust it only if it is a commit hash.
    const ref = await readFile(join(folder, "refs", revision), "utf8").catch(() => "");
    if (!COMMIT_RE.test(ref.trim())) return null;
    commit = ref.trim();
  }
  const dir = join(folder, "snapshots", commit);
  return (await stat(dir).catch(() => null))?.isDirectory() ? dir : null;
}

/** Add `Authorization` to every request to the hub (the library insists tokens start with hf_). */
function authFetch(base: typeof fetch, token: string | undefined): typeof fetch {
  if (!token) return base;
  return (input, init) => {
    const headers = new Headers(init?.headers);
    if (!headers.has("authorization")) headers.set("authorization", `Bearer ${token}`);
    return base(input, { ...init, headers });
  };
}

/** Commit hash for `revision` and the wanted top-level files, validated. */
async function listRemote(ctx: Ctx, revision: string, include: (p: string) => boolean) {
  const info = await modelInfo({
    name: ctx.repo,
    revision,
    hubUrl: ctx.hubUrl,
    fetch: ctx.fetch,
    additionalFields: ["sha"],
  });
  const commit = (info as { sha?: unknown }).sha;
  if (typeof commit !== "string" || !COMMIT_RE.test(commit)) {
    throw new HubError(ctx.repo, "bad_response", `hub returned no commit hash for revision "${revision}"`);
  }
  const files: RemoteFile[] = [];
  const repo = { type: "model" as const, name: ctx.repo };
  for await (const e of listFiles({ repo, revision: commit, hubUrl: ctx.hubUrl, fetch: ctx.fetch })) {
    if (e.type !== "file" || !include(e.path)) continue;
    // Paths and etags become file names in the cache: plain names only.
    if (!/^[^\\/\0]+$/.test(e.path) || e.path === "." || e.path === "..") {
      throw new HubError(ctx.repo, "bad_response", `refusing file name ${JSON.stringify(e.path)} from the hub`);
    }
    const etag = e.lfs?.oid ?? e.oid ?? "";
    const size = e.lfs?.size ?? e.size;
    if (!ETAG_RE.test(etag) || !Number.isSafeInteger(size) || size < 0) {
      throw new HubError(ctx.repo, "bad_response", `bad oid or size for ${e.path} from the hub`);
    }
    files.push({
      path: e.path,
      size,
      etag,
      hash: e.lfs ? (etag.length === 64 ? "sha256" : null) : etag.length === 40 ? "git-sha1" : null,
    });
  }
  return { commit, files };
}

/** Fetch every file missing from the snapshot, then link it in. */
async function downloadAll(ctx: Ctx, commit: string, files: RemoteFile[], onProgress?: (p: DownloadProgress) => void) {
  const snapshot = join(ctx.folder, "snapshots", commit);
  await mkdir(snapshot, { recursive: true });
  await mkdir(join(ctx.folder, "blobs"), { recursive: true });
  const todo: RemoteFile[] = [];
  for (const f of files) {
    const pointer = join(snapshot, f.path);
    if (await stat(pointer).catch(() => null)) continue; // follows the link: blob present too
    const blob = join(ctx.folder, "blobs", f.etag);
    if (!(await stat(blob).catch(() => null))) todo.push(f);
    else await link(blob, pointer);
  }
  const total = todo.reduce((s, f) => s + f.size, 0);
  let bytes = 0;
  for (const f of todo) {
    const blob = join(ctx.folder, "blobs", f.etag);
    const url = `${ctx.hubUrl}/${ctx.repo}/resolve/${commit}/${encodeURIComponent(f.path)}`;
    await downloadBlob(ctx, f, url, blob, (n) => {
      bytes += n;
      onProgress?.({ repo: ctx.repo, file: f.path, bytes, total });
    });
    await link(blob, join(snapshot, f.path));
  }
  if (todo.length > 0) onProgress?.({ repo: ctx.repo, file: "", bytes: total, total });
}

/** Download one file to `<blob>.incomplete`, resuming with a Range request, verify, rename. */
async function downloadBlob(ctx: Ctx, f: RemoteFile, url: string, blob: string, onBytes: (n: number) => void) {
  const part = `${blob}.incomplete`;
  let have = (await stat(part).catch(() => null))?.size ?? 0;
  if (have > f.size) have = 0; // longer than the file: not ours, start over
  onBytes(have);
  if (have < f.size || f.size === 0) {
    let res: Response;
    try {
      res = await ctx.fetch(url, { headers: have > 0 ? { range: `bytes=${have}-` } : {} });
    } catch (e) {
      throw new HubError(ctx.repo, "download_failed", `${f.path}: ${describe(e)} (rerun to resume)`, { cause: e });
    }
    const start = res.status === 206 ? Number(/^bytes (\d+)-/.exec(res.headers.get("content-range") ?? "")?.[1]) : 0;
    if (res.status !== 200 && !(res.status === 206 && start === have)) {
      await res.body?.cancel();
      throw new HubError(ctx.repo, "download_failed", `${f.path}: HTTP ${res.status} from ${url}`);
    }
    if (start === 0 && have > 0) onBytes(-have); // server ignored the range: restart
    const fh = await open(part, start === 0 ? "w" : "a");
    try {
      for await (const chunk of (res.body ?? []) as AsyncIterable<Uint8Array>) {
        await fh.write(chunk);
        onBytes(chunk.byteLength);
      }
    } catch (e) {
      throw new HubError(ctx.repo, "download_failed", `${f.path}: ${describe(e)} (rerun to resume)`, { cause: e });
    } finally {
      await fh.close();
    }
  }
  const got = (await stat(part)).size;
  if (got !== f.size) {
    throw new HubError(ctx.repo, "download_failed", `${f.path}: got ${got} of ${f.size} bytes (rerun to resume)`);
  }
  if (f.hash && (await hashFile(part, f.hash, f.size)) !== f.etag) {
    await rm(part, { force: true });
    throw new HubError(
      ctx.repo,
      "checksum_mismatch",
      `${f.path}: content does not match the hub's ${f.hash} ${f.etag}`,
    );
  }
  await rename(part, blob);
}

async function hashFile(path: string, kind: "sha256" | "git-sha1", size: number): Promise<string> {
  const h = createHash(kind === "sha256" ? "sha256" : "sha1");
  if (kind === "git-sha1") h.update(`blob ${size}\0`);
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** Relative symlink snapshot -> blob, as huggingface_hub does; a copy where symlinks fail. */
async function link(blob: string, pointer: string): Promise<void> {
  await mkdir(dirname(pointer), { recursive: true });
  await rm(pointer, { force: true });
  try {
    await symlink(relative(dirname(pointer), blob), pointer);
  } catch {
    await copyFile(blob, pointer);
  }
}

/** Connection-level failures (and hub 5xx/429) mean "use the cache"; other errors are answers. */
function isNetworkFailure(e: unknown): boolean {
  if (e instanceof HubApiError) return e.statusCode >= 500 || e.statusCode === 429;
  return e instanceof TypeError; // undici: "fetch failed" with the socket error as cause
}

function toHubError(ctx: Ctx, revision: string, e: unknown): Error {
  if (e instanceof HubError) return e;
  if (e instanceof HubApiError) {
    const s = e.statusCode;
    if (s === 404 || (s === 401 && !ctx.hasToken)) {
      const hint = s === 401 ? " (if it is private or gated, set HF_TOKEN)" : "";
      return new HubError(
        ctx.repo,
        "repo_not_found",
        `repository or revision "${revision}" not found on ${ctx.hubUrl}${hint}: ${e.message}`,
        { cause: e },
      );
    }
    if (s === 401 || s === 403) {
      return new HubError(
        ctx.repo,
        "unauthorized",
        `access denied on ${ctx.hubUrl} (gated or private; check HF_TOKEN): ${e.message}`,
        { cause: e },
      );
    }
  }
  return new HubError(ctx.repo, "bad_response", `hub request failed: ${describe(e)}`, { cause: e });
}

function describe(e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } })?.cause;
  return [(e as Error)?.message ?? String(e), cause?.code ?? cause?.message].filter(Boolean).join(": ");
}

/** A one-line progress display on stderr, redrawn at most every 100 ms. */
function ttyProgress(): (p: DownloadProgress) => void {
  let last = 0;
  const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
  return (p) => {
    const done = p.file === "";
    if (!done && Date.now() - last < 100) return;
    last = Date.now();
    process.stderr.write(`\r\x1b[2K${p.repo}: ${mb(p.bytes)} / ${mb(p.total)}${done ? "\n" : `  ${p.file}`}`);
  };
}
