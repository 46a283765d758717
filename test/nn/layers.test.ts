// Layer forwards against closed forms written with ops, PyTorch names and default initialisation.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { backward } from "../../src/autograd/index.ts";
import { referenceBackend, setBackend } from "../../src/backend/index.ts";
import {
  AdaptiveAvgPool2d,
  BatchNorm2d,
  Conv2d,
  Dropout,
  Embedding,
  Flatten,
  GELU,
  GroupNorm,
  Identity,
  LayerNorm,
  Linear,
  MaxPool2d,
  ModuleList,
  MultiheadAttention,
  ReLU,
  RMSNorm,
  Sequential,
  SiLU,
  Tanh,
} from "../../src/nn/index.ts";
import * as F from "../../src/ops/index.ts";
import { manualSeed } from "../../src/tensor/rng.ts";
import { randn, type Tensor, tensor } from "../../src/tensor/tensor.ts";
import { assertClose } from "../helpers.ts";

setBackend(referenceBackend);
const f64 = { dtype: "float64" as const };
const names = (m: { stateDict(): Map<string, Tensor> }) => [...m.stateDict().keys()];
const shapes = (m: { stateDict(): Map<string, Tensor> }) =>
  Object.fromEntries([...m.stateDict()].map(([k, v]) => [k, [...v.shape]]));

describe("Linear", () => {
  test("forward is x W^T + b; PyTorch shapes, names and init bounds", () => {
    manualSeed(1);
    const fc = new Linear(5, 3, f64);
    assert.deepEqual(shapes(fc), { weight: [3, 5], bias: [3] });
    const bound = 1 / Math.sqrt(5);
    for (const v of [...fc.weight.toList(), ...fc.bias!.toList()])
      assert.ok(Math.abs(v) <= bound, `init value ${v} outside ±${bound}`);
    const x = randn([2, 4, 5], f64);
    const want = F.add(F.matmul(x, F.transpose(fc.weight)), fc.bias!);
    assertClose(fc.forward(x), want, 1e-12, "linear");
    assert.deepEqual(names(new Linear(2, 2, { bias: false })), ["weight"]);
  });
  test("init is reproducible from manualSeed and spans the bound", () => {
    manualSeed(7);
    const a = new Linear(64, 64).weight.toList();
    manualSeed(7);
    const b = new Linear(64, 64).weight.toList();
    assert.deepEqual(a, b);
    const max = Math.max(...a.map(Math.abs));
    assert.ok(max > 0.9 / 8 && max <= 1 / 8, `max |w| ${max} for fan_in 64`);
  });
});

describe("Embedding", () => {
  test("lookup, and paddingIdx row starts at zero and gets no gradient", () => {
    manualSeed(2);
    const e = new Embedding(6, 3, { ...f64, paddingIdx: 0 });
    assert.deepEqual(e.weight.toList().slice(0, 3), [0, 0, 0]);
    const ids = tensor(new Int32Array([0, 2, 0, 5]), { shape: [2, 2] });
    const y = e.forward(ids);
    assert.deepEqual([...y.shape], [2, 2, 3]);
    assertClose(F.select(F.select(y, 0, 0), 0, 1), F.select(e.weight, 0, 2), 0, "row 2");
    backward(F.sum(F.mul(y, y)));
    const g = e.weight.grad!.toList();
    assert.deepEqual(g.slice(0, 3), [0, 0, 0], "padding row gradient");
    assert.ok(
      g.slice(6, 9).some((v) => v !== 0),
      "row 2 gets a gradient",
    );
  });
});

describe("normalisation layers", () => {
  test("LayerNorm matches (x - mean)/sqrt(var + eps) * w + b", () => {
    const ln = new LayerNorm(8, { ...f64, eps: 1e-5 });
    ln.weight!.data.set(randn([8], f64).data);
    ln.bias!.data.set(randn([8], f64).data);
    const x = randn([3, 8], f64);
    const mu = F.mean(x, -1, true);
    const v = F.mean(F.mul(F.sub(x, mu), F.sub(x, mu)), -1, true);
    const want = F.add(F.mul(F.div(F.sub(x, mu), F.sqrt(F.add(v, 1e-5))), ln.weight!), ln.bias!);
    assertClose(ln.forward(x), want, 1e-12, "layernorm");
    assert.deepEqual(names(ln), ["weight", "bias"]);
  });
  test("RMSNorm matches x / sqrt(mean(x^2) + eps) * w", () => {
    const n = new RMSNorm(6, { ...f64, eps: 1e-6 });
    n.weight.data.set(randn([6], f64).data);
    const x = randn([2, 3, 6], f64);
    const want = F.mul(F.div(x, F.sqrt(F.add(F.mean(F.mul(x, x), -1, true), 1e-6))), n.weight);
    assertClose(n.forward(x), want, 1e-12, "rmsnorm");
  });
  test("GroupNorm matches per-group statistics", () => {
    const gn = new GroupNorm(2, 4, f64);
    const x = randn([2, 4, 3, 3], f64);
    const y = gn.forward(x);
    // Group 0 of sample 0: channels 0..1 normalised together.
    const g0 = F.slice(F.select(x, 0, 0), 0, 0, 2).toList();
    const m = g0.reduce((a, b) => a + b) / g0.length;
    const v = g0.reduce((a, b) => a + (b - m) ** 2, 0) / g0.length;
    assertClose(
      F.slice(F.select(y, 0, 0), 0, 0, 2).toList(),
      g0.map((t) => (t - m) / Math.sqrt(v + 1e-5)),
      1e-12,
      "groupnorm",
    );
  });
  test("BatchNorm2d: HF/torchvision buffer names, batch stats + running update in train, running stats in eval", () => {
    const bn = new BatchNorm2d(3, f64);
    assert.deepEqual(names(bn), ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]);
    const x = F.add(F.mul(randn([4, 3, 2, 2], f64), 2), 1);
    const y = bn.forward(x);
    const xs = F.permute(x, [1, 0, 2, 3]);
    const mu = F.mean(xs, [1, 2, 3]).toList();
    const vb = F.variance(xs, [1, 2, 3], false, 0).toList();
    const vu = F.variance(xs, [1, 2, 3], false, 1).toList();
    assertClose(
      bn.running_mean!.value,
      mu.map((m) => 0.1 * m),
      1e-12,
      "running_mean",
    );
    assertClose(
      bn.running_var!.value,
      vu.map((v) => 0.9 + 0.1 * v),
      1e-12,
      "running_var",
    );
    assert.equal(bn.num_batches_tracked!.value.item(), 1);
    const y0 = F.select(F.permute(y, [1, 0, 2, 3]), 0, 0).toList();
    assertClose(
      y0,
      F.select(xs, 0, 0)
        .toList()
        .map((t) => (t - mu[0]) / Math.sqrt(vb[0] + 1e-5)),
      1e-12,
      "train forward",
    );
    bn.eval();
    const ye = bn.forward(x);
    const rm = bn.running_mean!.value.toList();
    const rv = bn.running_var!.value.toList();
    const ye0 = F.select(F.permute(ye, [1, 0, 2, 3]), 0, 0).toList();
    assertClose(
      ye0,
      F.select(xs, 0, 0)
        .toList()
        .map((t) => (t - rm[0]) / Math.sqrt(rv[0] + 1e-5)),
      1e-12,
      "eval forward",
    );
    assert.equal(bn.num_batches_tracked!.value.item(), 1, "eval does not count batches");
  });
  test("BatchNorm2d with momentum null keeps a cumulative average", () => {
    const bn = new BatchNorm2d(2, { ...f64, momentum: null });
    const a = randn([3, 2, 2, 2], f64);
    const b = randn([3, 2, 2, 2], f64);
    bn.forward(a);
    bn.forward(b);
    const ma = F.mean(a, [0, 2, 3]).toList();
    const mb = F.mean(b, [0, 2, 3]).toList();
    assertClose(
      bn.running_mean!.value,
      ma.map((v, i) => (v + mb[i]) / 2),
      1e-12,
      "cumulative mean",
    );
  });
});

describe("Conv2d, pools, dropout, activations", () => {
  test("Conv2d equals F.conv2d with its options; weight (out, in/groups, kh, kw)", () => {
    const c = new Conv2d(4, 6, 3, { ...f64, stride: 2, padding: 1, groups: 2 });
    assert.deepEqual(shapes(c), { weight: [6, 2, 3, 3], bias: [6] });
    const bound = 1 / Math.sqrt(2 * 9);
    assert.ok(c.weight.toList().every((v) => Math.abs(v) <= bound));
    const x = randn([2, 4, 7, 7], f64);
    assertClose(c.forward(x), F.conv2d(x, c.weight, c.bias, { stride: 2, padding: 1, groups: 2 }), 0, "conv");
  });
  test("Dropout is identity in eval and zeroes/rescales in train", () => {
    const d = new Dropout(0.5);
    const x = randn([1000], f64);
    d.eval();
    assert.equal(d.forward(x), x);
    d.train();
    const y = d.forward(x).toList();
    const xs = x.toList();
    let zeros = 0;
    y.forEach((v, i) => {
      if (v === 0) zeros++;
      else assert.ok(Math.abs(v - 2 * xs[i]) < 1e-12);
    });
    assert.ok(zeros > 400 && zeros < 600, `${zeros} of 1000 dropped`);
  });
  test("activation modules equal their functions", () => {
    const x = randn([10], f64);
    assertClose(new ReLU().forward(x), F.relu(x), 0, "relu");
    assertClose(new GELU("tanh").forward(x), F.gelu(x, "tanh"), 0, "gelu");
    assertClose(new SiLU().forward(x), F.mul(x, F.sigmoid(x)), 1e-12, "silu");
    assertClose(new Tanh().forward(x), x.toList().map(Math.tanh), 1e-12, "tanh");
    assert.equal(new Identity().forward(x), x);
  });
});

describe("containers", () => {
  test("Sequential names children by index (PyTorch) and chains forward", () => {
    manualSeed(3);
    const net = new Sequential(
      new Conv2d(1, 2, 3),
      new ReLU(),
      new MaxPool2d(2),
      new AdaptiveAvgPool2d(1),
      new Flatten(),
      new Linear(2, 3),
    );
    assert.deepEqual(names(net), ["0.weight", "0.bias", "5.weight", "5.bias"]);
    assert.deepEqual([...net.forward(randn([2, 1, 8, 8])).shape], [2, 3]);
    assert.equal(net.length, 6);
  });
  test("ModuleList and plain arrays give numeric path segments", () => {
    const l = new ModuleList([new Linear(2, 2), new Linear(2, 2)]);
    assert.deepEqual(names(l), ["0.weight", "0.bias", "1.weight", "1.bias"]);
    assert.equal(l.at(-1), [...l][1]);
  });
});

describe("MultiheadAttention", () => {
  const E = 8;
  const H = 2;
  /** Single-head-at-a-time closed form with explicit softmax, batch first. */
  function reference(m: MultiheadAttention, x: Tensor, keep: (b: number, i: number, j: number) => boolean): Tensor {
    const [N, L] = x.shape;
    const W = m.in_proj_weight!;
    const bias = m.in_proj_bias!;
    const proj = (i: number) => F.linear(x, F.slice(W, 0, i * E, (i + 1) * E), F.slice(bias, 0, i * E, (i + 1) * E));
    const [q, k, v] = [proj(0), proj(1), proj(2)];
    const D = E / H;
    const out = new Float64Array(N * L * E);
    const qa = q.toList(),
      ka = k.toList(),
      va = v.toList();
    for (let b = 0; b < N; b++)
      for (let h = 0; h < H; h++)
        for (let i = 0; i < L; i++) {
          const s: number[] = [];
          for (let j = 0; j < L; j++) {
            let dot = 0;
            for (let d = 0; d < D; d++) dot += qa[(b * L + i) * E + h * D + d] * ka[(b * L + j) * E + h * D + d];
            s.push(keep(b, i, j) ? dot / Math.sqrt(D) : Number.NEGATIVE_INFINITY);
          }
          const mx = Math.max(...s);
          const e = s.map((t) => Math.exp(t - mx));
          const z = e.reduce((a, c) => a + c);
          for (let d = 0; d < D; d++)
            out[(b * L + i) * E + h * D + d] = e.reduce((a, p, j) => a + (p / z) * va[(b * L + j) * E + h * D + d], 0);
        }
    return m.out_proj.forward(tensor(out, { shape: [N, L, E] }));
  }

  test("PyTorch names and shapes; separate q/k/v projections when kdim/vdim differ", () => {
    assert.deepEqual(shapes(new MultiheadAttention(E, H)), {
      in_proj_weight: [24, 8],
      in_proj_bias: [24],
      "out_proj.weight": [8, 8],
      "out_proj.bias": [8],
    });
    const m2 = new MultiheadAttention(E, H, { kdim: 5, vdim: 3 });
    assert.deepEqual(names(m2).sort(), [
      "in_proj_bias",
      "k_proj_weight",
      "out_proj.bias",
      "out_proj.weight",
      "q_proj_weight",
      "v_proj_weight",
    ]);
    const y = m2.forward(randn([4, 2, E]), randn([6, 2, 5]), randn([6, 2, 3]));
    assert.deepEqual([...y.shape], [4, 2, E]);
  });
  test("self-attention, causal and key-padding masks match the closed form", () => {
    manualSeed(4);
    const m = new MultiheadAttention(E, H, { ...f64, batchFirst: true });
    m.in_proj_bias!.data.set(randn([3 * E], f64).data);
    const x = randn([2, 5, E], f64);
    assertClose(
      m.forward(x),
      reference(m, x, () => true),
      1e-10,
      "plain",
    );
    assertClose(
      m.forward(x, x, x, { isCausal: true }),
      reference(m, x, (_b, i, j) => j <= i),
      1e-10,
      "causal",
    );
    const pad = tensor(Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 1, 1]), { shape: [2, 5], dtype: "bool" });
    assertClose(
      m.forward(x, x, x, { keyPaddingMask: pad }),
      reference(m, x, (b, _i, j) => !(b === 1 && j >= 3)),
      1e-10,
      "padding",
    );
    const attn = tensor(
      Uint8Array.from({ length: 25 }, (_, t) => (t % 5 > Math.floor(t / 5) ? 1 : 0)),
      { shape: [5, 5], dtype: "bool" },
    );
    assertClose(
      m.forward(x, x, x, { attnMask: attn }),
      reference(m, x, (_b, i, j) => j <= i),
      1e-10,
      "bool attn_mask = causal",
    );
  });
  test("sequence-first layout (PyTorch default) transposes in and out", () => {
    manualSeed(5);
    const m = new MultiheadAttention(E, H, f64);
    const x = randn([5, 2, E], f64);
    const y = m.forward(x);
    const ref = reference(m, F.contiguous(F.transpose(x, 0, 1)), () => true);
    assertClose(F.transpose(y, 0, 1), ref, 1e-10, "seq-first");
  });
});
