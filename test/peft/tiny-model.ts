// A small HF-named model for the LoRA tests, built only from nn.Module + nn.Linear:
// model.layers.<i>.self_attn.{q,k,v,o}_proj, model.layers.<i>.mlp.{0,2} (a Sequential), classifier.
import { GELU, Linear, Module, Sequential } from "../../src/nn/index.ts";
import * as F from "../../src/ops/index.ts";
import { Generator } from "../../src/tensor/rng.ts";
import { randn, type Tensor } from "../../src/tensor/tensor.ts";

export const D = 8;
export const CLASSES = 3;

class SelfAttention extends Module {
  q_proj: Linear;
  k_proj: Linear;
  v_proj: Linear;
  o_proj: Linear;
  constructor(g: Generator) {
    super();
    this.q_proj = new Linear(D, D, { generator: g });
    this.k_proj = new Linear(D, D, { generator: g });
    this.v_proj = new Linear(D, D, { generator: g });
    this.o_proj = new Linear(D, D, { generator: g });
  }
  forward(x: Tensor): Tensor {
    const q = this.q_proj.forward(x);
    const k = this.k_proj.forward(x);
    const v = this.v_proj.forward(x);
    const att = F.softmax(F.mul(F.matmul(q, F.transpose(k)), 1 / Math.sqrt(D)), -1);
    return this.o_proj.forward(F.matmul(att, v));
  }
}

class Block extends Module {
  self_attn: SelfAttention;
  mlp: Sequential;
  constructor(g: Generator) {
    super();
    this.self_attn = new SelfAttention(g);
    this.mlp = new Sequential(
      new Linear(D, 2 * D, { generator: g }),
      new GELU(),
      new Linear(2 * D, D, { generator: g }),
    );
  }
  forward(x: Tensor): Tensor {
    const h = F.add(x, this.self_attn.forward(x));
    return F.add(h, this.mlp.forward(h));
  }
}

class Backbone extends Module {
  /** A plain array of modules: names `layers.0`, `layers.1`. */
  layers: Block[];
  constructor(g: Generator, n: number) {
    super();
    this.layers = Array.from({ length: n }, () => new Block(g));
  }
  forward(x: Tensor): Tensor {
    for (const b of this.layers) x = b.forward(x);
    return x;
  }
}

/** `TinyForSequenceClassification`: x (B, T, D) -> logits (B, CLASSES). */
export class TinyClassifier extends Module {
  model: Backbone;
  classifier: Linear;
  constructor(seed = 0, layers = 2) {
    super();
    const g = new Generator(seed);
    this.model = new Backbone(g, layers);
    this.classifier = new Linear(D, CLASSES, { generator: g });
  }
  forward(x: Tensor): Tensor {
    return this.classifier.forward(F.mean(this.model.forward(x), 1));
  }
}

/** A fixed input batch (B=2, T=3, D). */
export function input(seed = 7): Tensor {
  return randn([2, 3, D], { generator: new Generator(seed) });
}

/** Number of parameters of the base model. */
export function baseCount(layers = 2): number {
  const attn = 4 * (D * D + D);
  const mlp = D * 2 * D + 2 * D + 2 * D * D + D;
  return layers * (attn + mlp) + D * CLASSES + CLASSES;
}
