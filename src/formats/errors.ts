/**
 * Typed errors for everything under `src/formats/`.
 *
 * Every error carries the file (or repo id) it is about, a machine-readable `code` and a
 * human-readable `reason`; the message always names both file and reason, so a user who only sees
 * the message knows which file to look at and why it was refused.
 *
 * @example
 * ```ts
 * try { await readSafetensors("model.safetensors"); }
 * catch (e) { if (e instanceof SafetensorsError && e.code === "truncated") redownload(); }
 * ```
 */

/** Codes a {@link SafetensorsError} can carry. */
export type SafetensorsErrorCode =
  | "io" // the file could not be opened or read
  | "truncated" // shorter than 8 bytes, or the header length points past the end of the file
  | "header_too_large" // header length above the 100 MB cap
  | "bad_utf8" // header bytes are not valid UTF-8
  | "bad_json" // header is not valid JSON
  | "not_object" // header (or an entry in it) is not a JSON object
  | "proto_key" // `__proto__` / `constructor` / `prototype` used as a key anywhere
  | "bad_metadata" // `__metadata__` is not a string -> string map
  | "bad_entry" // a tensor entry lacks dtype/shape/data_offsets or has extra keys
  | "bad_dtype" // unknown dtype name
  | "bad_shape" // a dimension is not a non-negative safe integer
  | "shape_overflow" // the element count or byte size overflows 2^53
  | "bad_offsets" // data_offsets not two non-negative safe integers with begin <= end
  | "size_mismatch" // (end - begin) != numel * itemsize
  | "out_of_bounds" // an offset points past the data section
  | "overlap" // two tensors share bytes
  | "gap" // bytes between two tensors belong to nobody
  | "trailing_bytes" // bytes after the last tensor belong to nobody
  | "bad_name" // a tensor name that cannot be written (empty, reserved)
  | "bad_index" // model.safetensors.index.json is malformed
  | "path_escape" // a shard path is absolute, uses `..`, or resolves outside the folder
  | "missing_shard" // a shard named by the index does not exist
  | "missing_tensor" // a tensor named by the index is not in its shard
  | "duplicate_tensor" // the same tensor name appears in two shards
  | "missing_file"; // neither model.safetensors nor an index in the folder

/** Codes a {@link HubError} can carry. */
export type HubErrorCode =
  | "bad_repo_id" // `hf:` spec that is not `owner/name[@revision]`
  | "not_found" // a local path that does not exist
  | "repo_not_found" // the hub answered 404 (or 401 for an anonymous request)
  | "unauthorized" // 401/403: gated or private repo, or a bad token
  | "not_cached" // offline (or network down) and nothing cached for that revision
  | "bad_response" // the hub answered something we cannot use (bad path, bad etag, bad size)
  | "download_failed" // a file download failed; a rerun resumes from the `.incomplete` file
  | "checksum_mismatch"; // the downloaded bytes do not match the hub's hash

/**
 * Base class for every error raised while reading or writing model files.
 *
 * @example
 * ```ts
 * throw new FormatError("config.json", "bad_json", "not valid JSON");
 * // Error: config.json: not valid JSON [bad_json]
 * ```
 */
export class FormatError extends Error {
  /** The file (or folder, or repo id) the error is about. */
  readonly file: string;
  /** What is wrong, in words. */
  readonly reason: string;
  /** Machine-readable reason, stable across releases. */
  readonly code: string;

  constructor(file: string, code: string, reason: string, options?: { cause?: unknown }) {
    super(`${file}: ${reason} [${code}]`, options);
    this.name = new.target.name;
    this.file = file;
    this.reason = reason;
    this.code = code;
  }
}

/**
 * A safetensors file, or a sharded safetensors folder, was refused.
 *
 * @example
 * ```ts
 * new SafetensorsError("m.safetensors", "gap", "bytes 16..24 belong to no tensor");
 * ```
 */
export class SafetensorsError extends FormatError {
  declare readonly code: SafetensorsErrorCode;
  constructor(file: string, code: SafetensorsErrorCode, reason: string, options?: { cause?: unknown }) {
    super(file, code, reason, options);
  }
}

/**
 * Resolving or downloading a model from the Hugging Face Hub failed. `file` is the repo id
 * (`owner/name`) or the local path.
 *
 * @example
 * ```ts
 * new HubError("gpt2", "not_cached", "offline and no cached snapshot for revision main");
 * ```
 */
export class HubError extends FormatError {
  declare readonly code: HubErrorCode;
  constructor(repo: string, code: HubErrorCode, reason: string, options?: { cause?: unknown }) {
    super(repo, code, reason, options);
  }
}
