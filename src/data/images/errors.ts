/**
 * Typed errors for the image-data pipeline (`src/data/images/`).
 *
 * Every error names the file (image, list file, config or cache folder) it is about, carries a
 * stable machine-readable `code` and a `reason` in words; the message holds all three, so a user
 * who only sees the message knows which file to look at and why it was refused.
 *
 * @example
 * ```ts
 * try { await decodeImage("photos/cat/1.jpg"); }
 * catch (e) { if (e instanceof ImageDataError && e.code === "truncated") console.log(e.file); }
 * ```
 */

/** Codes an {@link ImageDataError} can carry. */
export type ImageDataErrorCode =
  | "io" // the file or folder could not be read (missing, permission, EISDIR)
  | "empty" // a zero-byte image file
  | "too_big_file" // the file is larger than `maxFileBytes`
  | "not_image" // the leading bytes are not a JPEG, PNG, WebP or GIF signature
  | "truncated" // the file ends before the image data does (structure check or decoder)
  | "too_large" // the header claims more pixels than `maxPixels` (decompression bomb)
  | "corrupt" // the header or pixel data could not be parsed
  | "no_classes" // an image folder with no class sub-folder holding images
  | "bad_list" // a malformed CSV/JSONL row (missing path or label, bad JSON)
  | "path_escape" // a list path that is absolute or resolves outside the list's folder
  | "bad_config" // a preprocessing / augmentation / loader option out of range
  | "bad_state" // a loader cursor that does not fit this dataset or batch size
  | "cache"; // a feature-cache file that is malformed or does not match

/**
 * An image, image list, preprocessing config or feature cache was refused.
 *
 * @example
 * ```ts
 * new ImageDataError("cats/1.png", "too_large", "header claims 100000 x 100000 pixels");
 * // Error: cats/1.png: header claims 100000 x 100000 pixels [too_large]
 * ```
 */
export class ImageDataError extends Error {
  /** The file (or folder) the error is about. */
  readonly file: string;
  /** Machine-readable reason, stable across releases. */
  readonly code: ImageDataErrorCode;
  /** What is wrong, in words. */
  readonly reason: string;

  constructor(file: string, code: ImageDataErrorCode, reason: string, options?: { cause?: unknown }) {
    super(`${file}: ${reason} [${code}]`, options);
    this.name = "ImageDataError";
    this.file = file;
    this.code = code;
    this.reason = reason;
  }
}

/** One image that was skipped (with `skipInvalid`) and why. */
export interface SkippedImage {
  file: string;
  code: ImageDataErrorCode;
  reason: string;
}
