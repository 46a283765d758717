/**
 * The body of an image-loader worker: receives `{ id, task }`, builds the batch with the transform
 * given in `workerData`, and posts the pixels back as transferred buffers (no copy).
 */
import { parentPort, workerData } from "node:worker_threads";
import { ImageDataError } from "./errors.ts";
import { type BatchTask, buildBatch, type ImageTransform } from "./transform.ts";

const transform = (workerData as { transform: ImageTransform }).transform;
const port = parentPort;
if (!port) throw new Error("worker-main.ts must run in a worker thread");

port.on("message", async (msg: { id: number; task: BatchTask }) => {
  try {
    const batch = await buildBatch(msg.task, transform);
    port.postMessage({ id: msg.id, batch }, [batch.pixels.buffer as ArrayBuffer, batch.labels.buffer as ArrayBuffer]);
  } catch (e) {
    const err = e as Error;
    const image = e instanceof ImageDataError ? { file: e.file, code: e.code, reason: e.reason } : null;
    port.postMessage({ id: msg.id, error: { message: err?.message ?? String(e), stack: err?.stack, image } });
  }
});
