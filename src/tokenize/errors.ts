/**
 * Typed tokenizer errors. Like `ConfigError` they name the file (tokenizer.json,
 * tokenizer_config.json, ...) and the key or option at fault.
 */

/** Thrown for invalid tokenizer files, unknown special tokens, bad ids and template failures. */
export class TokenizerError extends Error {
  override name = "TokenizerError";
  /** The file (or `"input"` for caller arguments) the problem is in. */
  readonly file: string;
  /** The offending key, token or option, when there is one. */
  readonly key: string | undefined;
  /** The message without the file/key prefix. */
  readonly detail: string;
  constructor(file: string, key: string | undefined, detail: string, options?: ErrorOptions) {
    super(`${file}${key === undefined ? "" : `: ${key}`}: ${detail}`, options);
    this.file = file;
    this.key = key;
    this.detail = detail;
  }
}
