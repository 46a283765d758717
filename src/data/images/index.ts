/**
 * The image-data pipeline: index a folder or list, check and decode images, preprocess as the
 * model expects, augment, load batches ahead in worker threads, cache backbone features.
 *
 * @example
 * ```ts
 * import { indexImageFolder, stratifiedSplit, preprocessorFromConfig, ImageLoader } from "./data/images/index.ts";
 * const ds = await indexImageFolder("./photos");
 * const { train, validation } = stratifiedSplit(ds, { validationFraction: 0.2, seed: 0 });
 * const pre = preprocessorFromConfig("resnet18");
 * const loader = new ImageLoader(train, { transform: { preprocessor: pre, augment: {} }, batchSize: 16 });
 * ```
 */
export * from "./augment.ts";
export * from "./dataset.ts";
export * from "./decode.ts";
export * from "./errors.ts";
export * from "./feature-cache.ts";
export * from "./loader.ts";
export * from "./preprocess.ts";
export * from "./resample.ts";
export * from "./transform.ts";
