/**
 * Parameter initialisation (PyTorch `torch.nn.init` names), in place, from a seeded generator
 * (the default one unless given), so `manualSeed(n)` makes model construction reproducible.
 */
import { DTypeError, ValueError } from "../tensor/errors.ts";
import { defaultGenerator, type Generator } from "../tensor/rng.ts";
import { forEachOffset, type Tensor } from "../tensor/tensor.ts";

function fill(t: Tensor, op: string, f: () => number): Tensor {
  if (t.dtype !== "float32" && t.dtype !== "float64")
    throw new DTypeError(`init.${op}: only float32/float64 tensors, got ${t.dtype}`);
  forEachOffset(t.shape, t.strides, t.offset, (off) => {
    t.data[off] = f();
  });
  return t;
}

let randomInitOff = 0;

/**
 * Runs `fn` with the random initialisers (`uniform_`, `normal_` and those built on them) turned
 * into no-ops, so fresh parameters stay zero (HF `no_init_weights`): for building a model whose
 * weights a checkpoint is about to overwrite. Fixed fills (`ones_`, `zeros_`) still run.
 * @example const model = noInit(() => new Linear(4096, 4096));   // zeros, no random draws
 */
export function noInit<T>(fn: () => T): T {
  randomInitOff++;
  try {
    return fn();
  } finally {
    randomInitOff--;
  }
}

/** Uniform in [a, b) (`nn.init.uniform_`). */
export function uniform_(t: Tensor, a = 0, b = 1, g: Generator = defaultGenerator): Tensor {
  if (randomInitOff) return t;
  return fill(t, "uniform_", () => a + (b - a) * g.random());
}

/** Normal(mean, std) (`nn.init.normal_`). */
export function normal_(t: Tensor, mean = 0, std = 1, g: Generator = defaultGenerator): Tensor {
  if (randomInitOff) return t;
  return fill(t, "normal_", () => mean + std * g.normal());
}

export function constant_(t: Tensor, v: number): Tensor {
  return fill(t, "constant_", () => v);
}
export function zeros_(t: Tensor): Tensor {
  return constant_(t, 0);
}
export function ones_(t: Tensor): Tensor {
  return constant_(t, 1);
}

/** (fan_in, fan_out) as PyTorch computes them: dims 1 and 0 times the receptive field (dims 2..). */
export function fans(shape: readonly number[]): [number, number] {
  if (shape.length < 2) throw new ValueError(`init: fan in/out need at least 2 dims, got ${shape.length}`);
  const rf = shape.slice(2).reduce((a, b) => a * b, 1);
  return [shape[1] * rf, shape[0] * rf];
}

/**
 * `nn.init.kaiming_uniform_` (fan_in mode, leaky_relu gain). With `a = sqrt(5)` (the PyTorch
 * Linear/Conv default) the bound is 1/sqrt(fan_in).
 * @example kaimingUniform_(linear.weight, Math.sqrt(5))
 */
export function kaimingUniform_(t: Tensor, a = 0, g: Generator = defaultGenerator): Tensor {
  const [fanIn] = fans(t.shape);
  const gain = Math.sqrt(2 / (1 + a * a));
  const bound = Math.sqrt(3) * (gain / Math.sqrt(fanIn));
  return uniform_(t, -bound, bound, g);
}

/** `nn.init.xavier_uniform_`: bound gain * sqrt(6 / (fan_in + fan_out)). */
export function xavierUniform_(t: Tensor, gain = 1, g: Generator = defaultGenerator): Tensor {
  const [fanIn, fanOut] = fans(t.shape);
  const bound = gain * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(t, -bound, bound, g);
}
