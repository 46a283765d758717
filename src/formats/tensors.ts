/**
 * Bridge between safetensors' raw tensors and `Tensor`: F32/F64/I32 stay zero-copy where aligned;
 * BF16/F16 stay as half storage (widened to float32 when computed on); I64 narrows to int32 with a
 * range check; U8/BOOL become bool/int32.
 */
import type { DType } from "../tensor/dtype.ts";
import { Tensor, forEachOffset } from "../tensor/tensor.ts";
import { FormatError } from "./errors.ts";
import { type RawTensor, type StDtype, fromFloat32, typedView } from "./safetensors.ts";

/** Converts a raw safetensors entry into a Tensor (`name`/`file` are used in errors). */
export function rawToTensor(raw: RawTensor, name = "tensor", file = "<memory>"): Tensor {
  const v = typedView(raw);
  const shape = raw.shape;
  switch (raw.dtype) {
    case "F32":
      return new Tensor(v as Float32Array, "float32", shape);
    case "F64":
      return new Tensor(v as Float64Array, "float64", shape);
    case "I32":
      return new Tensor(v as Int32Array, "int32", shape);
    case "BF16":
      return new Tensor(v as Uint16Array, "bfloat16", shape);
    case "F16":
      return new Tensor(v as Uint16Array, "float16", shape);
    case "BOOL":
      return new Tensor(Uint8Array.from(v as Uint8Array, (x) => (x ? 1 : 0)), "bool", shape);
    case "I64": {
      const src = v as BigInt64Array;
      const out = new Int32Array(src.length);
      for (let i = 0; i < src.length; i++) {
        const x = src[i];
        if (x > 2147483647n || x < -2147483648n) throw new FormatError(file, "int_range", `tensor '${name}': int64 value ${x} does not fit in int32`);
        out[i] = Number(x);
      }
      return new Tensor(out, "int32", shape);
    }
    default:
      return new Tensor(Int32Array.from(v as ArrayLike<number>), "int32", shape);
  }
}

const ST_OF: Partial<Record<DType, StDtype>> = { float32: "F32", float64: "F64", int32: "I32", bfloat16: "BF16", float16: "F16", bool: "BOOL" };

/** Converts a Tensor into a raw safetensors entry (contiguous copy when needed), optionally casting floats to `as`. */
export function tensorToRaw(t: Tensor, as?: "F32" | "F16" | "BF16"): RawTensor {
  const shape = [...t.shape];
  if (as && as !== ST_OF[t.dtype] && (t.dtype === "float32" || t.dtype === "float64" || t.dtype === "bfloat16" || t.dtype === "float16")) {
    return fromFloat32(t.toFloat32Array(), as, shape);
  }
  const dtype = ST_OF[t.dtype];
  if (!dtype) throw new FormatError("<memory>", "bad_dtype", `cannot store dtype ${t.dtype}`);
  const contiguous = t.isContiguous() && t.offset === 0 && t.data.length === t.size ? t.data : copyContiguous(t);
  return { dtype, shape, data: new Uint8Array(contiguous.buffer, contiguous.byteOffset, contiguous.byteLength) };
}

/** A contiguous copy of the raw storage values (no float round trip, so half bits are kept). */
function copyContiguous(t: Tensor) {
  const Ctor = t.data.constructor as new (n: number) => typeof t.data;
  const out = new Ctor(t.size);
  forEachOffset(t.shape, t.strides, t.offset, (off, i) => {
    out[i] = t.data[off];
  });
  return out;
}
