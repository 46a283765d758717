import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, test } from "node:test";
import { HubError } from "../../src/formats/errors.ts";
import { type DownloadProgress, parseHubSpec, resolveModelPath } from "../../src/formats/hub.ts";
import { readSafetensors } from "../../src/formats/safetensors.ts";

const GPT2 = join(import.meta.dirname, "..", "fixtures", "models", "gpt2");
const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const gitOid = (b: Buffer) => createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");

interface Hit {
  url: string;
  range?: string;
  auth?: string;
  bytes: number;
}

/**
 * A stand-in for huggingface.co serving one repo the way the hub API does:
 * `/api/models/{repo}/revision/{rev}`, `/api/models/{repo}/tree/{rev}` and
 * `/{repo}/resolve/{rev}/{path}` with etag / x-repo-commit / x-linked-etag headers and Range.
 */
class MockHub {
  server!: Server;
  url = "";
  hits: Hit[] = [];
  /** cut the connection after this many body bytes of a file (once) */
  cut = new Map<string, number>();
  /** report this sha256 for a file instead of the real one */
  lie = new Map<string, string>();
  constructor(
    readonly repo: string,
    readonly files: Map<string, { data: Buffer; lfs: boolean }>,
  ) {}

  async start(): Promise<this> {
    this.server = createServer((req, res) => this.handle(req.url ?? "", req.headers, res));
    await new Promise<void>((ok) => this.server.listen(0, "127.0.0.1", ok));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((ok) => this.server.close(ok));
  }

  served(path: string): Hit[] {
    return this.hits.filter((h) => h.url.includes(`/resolve/`) && h.url.endsWith(`/${path}`));
  }

  private json(
    res: import("node:http").ServerResponse,
    status: number,
    body: unknown,
    headers: Record<string, string> = {},
  ) {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  }

  private handle(
    rawUrl: string,
    headers: import("node:http").IncomingHttpHeaders,
    res: import("node:http").ServerResponse,
  ) {
    const hit: Hit = { url: rawUrl, range: headers.range, auth: headers.authorization, bytes: 0 };
    this.hits.push(hit);
    const url = new URL(rawUrl, "http://x");
    let m = /^\/api\/models\/(.+)\/revision\/([^/]+)$/.exec(url.pathname);
    if (m) {
      if (m[1] !== this.repo)
        return this.json(res, 404, { error: "Repository not found" }, { "x-error-code": "RepoNotFound" });
      const rev = decodeURIComponent(m[2]);
      if (rev !== "main" && rev !== COMMIT)
        return this.json(res, 404, { error: `Invalid rev id: ${rev}` }, { "x-error-code": "RevisionNotFound" });
      return this.json(res, 200, {
        _id: "65f0c0ffee",
        id: this.repo,
        sha: COMMIT,
        private: false,
        gated: false,
        downloads: 0,
        likes: 0,
        lastModified: "2024-01-01T00:00:00.000Z",
        siblings: [...this.files.keys()].map((rfilename) => ({ rfilename })),
      });
    }
    m = /^\/api\/models\/(.+)\/tree\/([^/]+)$/.exec(url.pathname);
    if (m) {
      if (m[1] !== this.repo || m[2] !== COMMIT) return this.json(res, 404, { error: "Not found" });
      return this.json(
        res,
        200,
        [...this.files].map(([path, f]) => ({
          type: "file",
          path,
          size: f.data.length,
          oid: gitOid(f.data),
          ...(f.lfs
            ? { lfs: { oid: this.lie.get(path) ?? sha256(f.data), size: f.data.length, pointerSize: 134 } }
            : {}),
        })),
      );
    }
    m = /^\/(.+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const file = m && m[1] === this.repo ? this.files.get(decodeURIComponent(m[3])) : undefined;
    if (!m || !file) return this.json(res, 404, { error: "Entry not found" }, { "x-error-code": "EntryNotFound" });
    const { data, lfs } = file;
    const etag = lfs ? sha256(data) : gitOid(data);
    const common = {
      "x-repo-commit": COMMIT,
      etag: `"${etag}"`,
      "accept-ranges": "bytes",
      ...(lfs ? { "x-linked-etag": `"${etag}"`, "x-linked-size": String(data.length) } : {}),
    };
    const r = /^bytes=(\d+)-$/.exec(headers.range ?? "");
    const start = r ? Number(r[1]) : 0;
    if (start > data.length) {
      res.writeHead(416, { "content-range": `bytes */${data.length}` });
      return res.end();
    }
    const body = data.subarray(start);
    res.writeHead(r ? 206 : 200, {
      ...common,
      "content-length": String(body.length),
      ...(r ? { "content-range": `bytes ${start}-${data.length - 1}/${data.length}` } : {}),
    });
    const cutAt = this.cut.get(decodeURIComponent(m[3]));
    if (cutAt !== undefined) {
      this.cut.delete(decodeURIComponent(m[3]));
      hit.bytes = cutAt;
      // Give the client time to consume what was sent: a stream that errors drops queued chunks.
      res.write(body.subarray(0, cutAt), () => setTimeout(() => res.destroy(), 200));
      return;
    }
    hit.bytes = body.length;
    res.end(body);
  }
}

let tmp: string;
let model: Buffer;
let files: Map<string, { data: Buffer; lfs: boolean }>;
const savedEnv = { ...process.env };

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "tunekit-hub-"));
  model = await readFile(join(GPT2, "model.safetensors"));
  files = new Map([
    ["config.json", { data: await readFile(join(GPT2, "config.json")), lfs: false }],
    ["generation_config.json", { data: await readFile(join(GPT2, "generation_config.json")), lfs: false }],
    ["model.safetensors", { data: model, lfs: true }],
    [
      "tokenizer.json",
      { data: Buffer.from('{"version":"1.0","model":{"type":"BPE","vocab":{},"merges":[]}}'), lfs: false },
    ],
    ["README.md", { data: Buffer.from("# tiny gpt2\n"), lfs: false }],
    ["pytorch_model.bin", { data: Buffer.alloc(1000, 1), lfs: true }],
  ]);
  for (const k of ["HF_HUB_CACHE", "HF_HOME", "HF_ENDPOINT", "HF_TOKEN", "HF_HUB_OFFLINE", "HUGGING_FACE_HUB_TOKEN"])
    delete process.env[k];
});
afterEach(() => {
  for (const k of ["HF_HUB_CACHE", "HF_HOME", "HF_ENDPOINT", "HF_TOKEN", "HF_HUB_OFFLINE"]) delete process.env[k];
});
after(async () => {
  process.env = savedEnv;
  await rm(tmp, { recursive: true, force: true });
});

function expectHub(code: string, repo: string) {
  return (e: unknown) => {
    assert.ok(e instanceof HubError, `expected HubError, got ${e}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.file, repo);
    assert.ok(e.message.includes(repo), e.message);
    return true;
  };
}

async function freshCache(name: string): Promise<string> {
  const dir = join(tmp, name);
  await mkdir(dir, { recursive: true });
  return dir;
}

describe("resolveModelPath", () => {
  test("a local folder resolves to itself; a missing one is a clear error", async () => {
    assert.equal(await resolveModelPath(GPT2), GPT2);
    await assert.rejects(resolveModelPath(join(tmp, "nope")), expectHub("not_found", join(tmp, "nope")));
  });

  test("hf: specs are parsed and validated", () => {
    assert.deepEqual(parseHubSpec("hf:tiny/gpt2"), { repo: "tiny/gpt2", revision: "main" });
    assert.deepEqual(parseHubSpec("hf:gpt2@refs/pr/1"), { repo: "gpt2", revision: "refs/pr/1" });
    assert.equal(parseHubSpec("./tiny/gpt2"), null);
    for (const bad of [
      "hf:",
      "hf:../evil",
      "hf:a/b/c",
      "hf:a--b/c",
      "hf:owner/na me",
      "hf:o/n@../x",
      "hf:o/n@",
      "hf:/abs",
    ]) {
      assert.throws(
        () => parseHubSpec(bad),
        (e: unknown) => e instanceof HubError && e.code === "bad_repo_id",
        bad,
      );
    }
  });

  test("downloads into HF_HUB_CACHE via HF_ENDPOINT, then works with the server stopped", async () => {
    const hub = await new MockHub("tiny/gpt2", files).start();
    const cache = await freshCache("cache-main");
    process.env.HF_HUB_CACHE = cache;
    process.env.HF_ENDPOINT = hub.url;
    process.env.HF_TOKEN = "test-token";
    const progress: DownloadProgress[] = [];
    let dir: string;
    try {
      dir = await resolveModelPath("hf:tiny/gpt2", { onProgress: (p) => progress.push(p) });
    } finally {
      await hub.stop();
    }
    const folder = join(cache, "models--tiny--gpt2");
    assert.equal(dir, join(folder, "snapshots", COMMIT));
    assert.deepEqual((await readdir(dir)).sort(), [
      "config.json",
      "generation_config.json",
      "model.safetensors",
      "tokenizer.json",
    ]);
    assert.equal(
      hub.served("README.md").length + hub.served("pytorch_model.bin").length,
      0,
      "unwanted files were fetched",
    );
    assert.equal((await readFile(join(folder, "refs", "main"), "utf8")).trim(), COMMIT);
    // Snapshot entries are relative links into blobs/, named by sha256 (LFS) or git oid.
    assert.ok((await lstat(join(dir, "model.safetensors"))).isSymbolicLink());
    assert.equal(await readlink(join(dir, "model.safetensors")), join("..", "..", "blobs", sha256(model)));
    assert.ok(await stat(join(folder, "blobs", gitOid(files.get("config.json")?.data ?? Buffer.alloc(0)))));
    assert.deepEqual(await readFile(join(dir, "model.safetensors")), model);
    assert.ok(
      (await readSafetensors(join(dir, "model.safetensors"))).tensors.has("transformer.h.0.attn.c_attn.weight"),
    );
    // HF_TOKEN went to every request; progress ended at the total.
    assert.ok(hub.hits.length > 0 && hub.hits.every((h) => h.auth === "Bearer test-token"));
    const last = progress.at(-1) as DownloadProgress;
    assert.equal(last.bytes, last.total);
    assert.ok(last.total >= model.length);

    // Server gone: the network failure falls back to refs/main -> the cached snapshot.
    assert.equal(await resolveModelPath("hf:tiny/gpt2"), dir);
    assert.equal(await resolveModelPath(`hf:tiny/gpt2@${COMMIT}`), dir);
    process.env.HF_HUB_OFFLINE = "1";
    assert.equal(await resolveModelPath("hf:tiny/gpt2"), dir);
    await assert.rejects(resolveModelPath("hf:tiny/gpt2@v2"), expectHub("not_cached", "tiny/gpt2"));
  });

  test("a second online call downloads nothing", async () => {
    const hub = await new MockHub("tiny/gpt2", files).start();
    const cache = await freshCache("cache-twice");
    try {
      await resolveModelPath("hf:tiny/gpt2", { cacheDir: cache, hubUrl: hub.url });
      const before = hub.hits.filter((h) => h.url.includes("/resolve/")).length;
      await resolveModelPath("hf:tiny/gpt2", { cacheDir: cache, hubUrl: hub.url });
      assert.equal(hub.hits.filter((h) => h.url.includes("/resolve/")).length, before);
    } finally {
      await hub.stop();
    }
  });

  test("resumes from a partial <blob>.incomplete with a Range request", async () => {
    const hub = await new MockHub("tiny/gpt2", files).start();
    const cache = await freshCache("cache-resume");
    const blobs = join(cache, "models--tiny--gpt2", "blobs");
    await mkdir(blobs, { recursive: true });
    const have = 50_000;
    await writeFile(join(blobs, `${sha256(model)}.incomplete`), model.subarray(0, have));
    try {
      const dir = await resolveModelPath("hf:tiny/gpt2", { cacheDir: cache, hubUrl: hub.url });
      assert.deepEqual(await readFile(join(dir, "model.safetensors")), model);
    } finally {
      await hub.stop();
    }
    const hits = hub.served("model.safetensors");
    assert.equal(hits.length, 1);
    assert.equal(hits[0].range, `bytes=${have}-`);
    assert.equal(hits[0].bytes, model.length - have, "only the missing bytes were served");
    assert.deepEqual(
      (await readdir(blobs)).filter((n) => n.endsWith(".incomplete")),
      [],
    );
  });

  test("an interrupted download fails clearly and the rerun resumes", async () => {
    const hub = await new MockHub("tiny/gpt2", files).start();
    hub.cut.set("model.safetensors", 40_000);
    const cache = await freshCache("cache-cut");
    try {
      await assert.rejects(
        resolveModelPath("hf:tiny/gpt2", { cacheDir: cache, hubUrl: hub.url }),
        expectHub("download_failed", "tiny/gpt2"),
      );
      const partial = join(cache, "models--tiny--gpt2", "blobs", `${sha256(model)}.incomplete`);
      const got = (await stat(partial)).size;
      assert.ok(got > 0 && got <= 40_000, `partial file has ${got} bytes`);
      // No ref yet: an incomplete snapshot is never what "main" points at.
      await assert.rejects(
        resolveModelPath("hf:tiny/gpt2", { cacheDir: cache, offline: true }),
        expectHub("not_cached", "tiny/gpt2"),
      );
      const dir = await resolveModelPath("hf:tiny/gpt2", { cacheDir: cache, hubUrl: hub.url });
      assert.deepEqual(await readFile(join(dir, "model.safetensors")), model);
      assert.equal(hub.served("model.safetensors").at(-1)?.range, `bytes=${got}-`);
    } finally {
      await hub.stop();
    }
  });

  test("content that does not match the hub's sha256 is refused", async () => {
    const hub = await new MockHub("tiny/gpt2", files).start();
    hub.lie.set("model.safetensors", "f".repeat(64));
    const cache = await freshCache("cache-lie");
    try {
      await assert.rejects(
        resolveModelPath("hf:tiny/gpt2", { cacheDir: cache, hubUrl: hub.url }),
        expectHub("checksum_mismatch", "tiny/gpt2"),
      );
      assert.deepEqual(
        (await readdir(join(cache, "models--tiny--gpt2", "blobs"))).filter((n) => n.startsWith("f".repeat(64))),
        [],
      );
    } finally {
      await hub.stop();
    }
  });

  test("bad repo ids, unknown repos and empty caches give errors naming the repo", async () => {
    const hub = await new MockHub("tiny/gpt2", files).start();
    const cache = await freshCache("cache-errors");
    try {
      await assert.rejects(
        resolveModelPath("hf:../../etc", { cacheDir: cache, hubUrl: hub.url }),
        expectHub("bad_repo_id", "../../etc"),
      );
      await assert.rejects(
        resolveModelPath("hf:tiny/missing", { cacheDir: cache, hubUrl: hub.url }),
        expectHub("repo_not_found", "tiny/missing"),
      );
      await assert.rejects(
        resolveModelPath("hf:tiny/gpt2@nope", { cacheDir: cache, hubUrl: hub.url }),
        expectHub("repo_not_found", "tiny/gpt2"),
      );
      await assert.rejects(
        resolveModelPath("hf:tiny/gpt2", { cacheDir: cache, offline: true }),
        expectHub("not_cached", "tiny/gpt2"),
      );
    } finally {
      await hub.stop();
    }
    // Nothing listening and nothing cached.
    await assert.rejects(
      resolveModelPath("hf:tiny/gpt2", { cacheDir: cache, hubUrl: hub.url }),
      expectHub("not_cached", "tiny/gpt2"),
    );
  });
});
