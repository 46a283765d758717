// Every optimiser trajectory of the PyTorch fixtures (torch 1.13): parameters after each of 12
// steps within 1e-6 relative (float64), the lr used at each step and the pre-clip gradient norms.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { backward } from "../../src/autograd/index.ts";
import { referenceBackend, setBackend } from "../../src/backend/index.ts";
import { add, mul, sin, sub, sum } from "../../src/ops/index.ts";
import {
  Adam,
  AdamW,
  type BaseHyper,
  clipGradNorm,
  cosineWithWarmupLambda,
  getCosineScheduleWithWarmup,
  getLinearScheduleWithWarmup,
  LRScheduler,
  type Optimizer,
  SGD,
} from "../../src/optim/index.ts";
import { Tensor } from "../../src/tensor/tensor.ts";
import { assertClose, loadJson, loadTensors, maxRelDiff } from "../helpers.ts";

interface Case {
  name: string;
  optimizer: string;
  steps: number;
  lr_used_each_step: number[];
  clip_total_norm_before_clip_each_step: number[] | null;
}

const spec = loadJson<{ loss: string; cases: Case[] }>("optim/optim.json");
const data = loadTensors("optim/optim.safetensors");

/** optim.json: loss(ps, t) = sum_i (1+i) * sum((p_i - 0.3)^2) + sum(sin(3 p_i + t)). */
function loss(ps: Tensor[], t: number): Tensor {
  let l: Tensor | null = null;
  ps.forEach((p, i) => {
    const d = sub(p, 0.3);
    const term = add(mul(sum(mul(d, d)), 1 + i), sum(sin(add(mul(p, 3), t))));
    l = l ? add(l, term) : term;
  });
  return l as unknown as Tensor;
}

interface Setup {
  opt: Optimizer<BaseHyper>;
  sched?: LRScheduler;
  clip?: number;
}

/** The tunekit equivalent of each case's `optimizer` line. */
const SETUPS: Record<string, (ps: Tensor[]) => Setup> = {
  sgd: (ps) => ({ opt: new SGD(ps, { lr: 0.05 }) }),
  sgd_momentum_wd: (ps) => ({ opt: new SGD(ps, { lr: 0.05, momentum: 0.9, weightDecay: 0.01 }) }),
  sgd_nesterov: (ps) => ({ opt: new SGD(ps, { lr: 0.05, momentum: 0.9, nesterov: true }) }),
  adam: (ps) => ({ opt: new Adam(ps, { lr: 0.01, betas: [0.9, 0.999], eps: 1e-8 }) }),
  adamw: (ps) => ({ opt: new AdamW(ps, { lr: 0.01, betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.1 }) }),
  adamw_warmup_cosine: (ps) => {
    const opt = new AdamW(ps, { lr: 0.02, weightDecay: 0.01 });
    return { opt, sched: getCosineScheduleWithWarmup(opt, 3, 12) };
  },
  adamw_warmup_linear_clip: (ps) => {
    const opt = new AdamW(ps, { lr: 0.02 });
    return { opt, sched: getLinearScheduleWithWarmup(opt, 2, 12), clip: 1.0 };
  },
};

function leaf(t: Tensor): Tensor {
  const out = new Tensor(Float64Array.from(t.toFloat64Array()), "float64", t.shape);
  return out.requiresGrad_(true);
}

/** Runs a case; returns the largest relative difference seen over all steps. */
function runCase(c: Case, make: (ps: Tensor[]) => Setup = SETUPS[c.name]): number {
  let worst = 0;
  const ps = [0, 1].map((i) => leaf(data.get(`${c.name}/p${i}/init`)!));
  assert.equal(ps[0].dtype, "float64");
  const { opt, sched, clip } = make(ps);
  for (let k = 0; k < c.steps; k++) {
    opt.zeroGrad();
    backward(loss(ps, k));
    if (clip !== undefined) {
      const norm = clipGradNorm(ps, clip);
      const want = c.clip_total_norm_before_clip_each_step![k];
      assert.ok(Math.abs(norm - want) <= 1e-9 * want, `${c.name} step ${k + 1}: pre-clip norm ${norm} vs ${want}`);
    }
    const lr = opt.paramGroups[0].lr;
    const wantLr = c.lr_used_each_step[k];
    assert.ok(Math.abs(lr - wantLr) <= 1e-15 + 1e-12 * wantLr, `${c.name} step ${k + 1}: lr ${lr} vs ${wantLr}`);
    opt.step();
    sched?.step();
    for (let i = 0; i < 2; i++) {
      const want = data.get(`${c.name}/p${i}/step${k + 1}`)!;
      assertClose(ps[i], want, 1e-6, `${c.name} p${i} step ${k + 1}`);
      worst = Math.max(worst, maxRelDiff(ps[i].toFloat64Array(), want.toFloat64Array()));
    }
  }
  return worst;
}

describe("optimiser fixtures (PyTorch 1.13), float64", () => {
  setBackend(referenceBackend);
  test("every fixture case has a setup", () => {
    assert.deepEqual(
      spec.cases.map((c) => c.name).filter((n) => !SETUPS[n]),
      [],
    );
  });
  for (const c of spec.cases) test(c.name, (t) => t.diagnostic(`max rel diff ${runCase(c).toExponential(2)}`));

  test("the cosine case also matches with the explicit LambdaLR form", () => {
    const c = spec.cases.find((x) => x.name === "adamw_warmup_cosine")!;
    runCase(c, (ps) => {
      const opt = new AdamW(ps, { lr: 0.02, weightDecay: 0.01 });
      return { opt, sched: new LRScheduler(opt, cosineWithWarmupLambda(3, 12, 0.5)) };
    });
  });

  test("resume mid-trajectory from stateDict (optimizer + scheduler) reproduces the fixture", () => {
    const c = spec.cases.find((x) => x.name === "adamw_warmup_linear_clip")!;
    const ps = [0, 1].map((i) => leaf(data.get(`${c.name}/p${i}/init`)!));
    const opt = new AdamW(ps, { lr: 0.02 });
    const sched = getLinearScheduleWithWarmup(opt, 2, 12);
    const stepOnce = (o: AdamW, s: LRScheduler, q: Tensor[], k: number) => {
      o.zeroGrad();
      backward(loss(q, k));
      clipGradNorm(q, 1.0);
      o.step();
      s.step();
    };
    for (let k = 0; k < 5; k++) stepOnce(opt, sched, ps, k);
    const osd = opt.stateDict();
    const ssd = sched.stateDict();
    assert.equal(osd.state[0].step, 5);
    // A fresh optimiser over copies of the parameters, restored from the snapshots.
    const qs = ps.map((p) => leaf(p));
    const opt2 = new AdamW(qs, { lr: 0.02 });
    const sched2 = getLinearScheduleWithWarmup(opt2, 2, 12);
    opt2.loadStateDict(osd);
    sched2.loadStateDict(ssd);
    for (let k = 5; k < 12; k++) {
      stepOnce(opt2, sched2, qs, k);
      for (let i = 0; i < 2; i++)
        assertClose(qs[i], data.get(`${c.name}/p${i}/step${k + 1}`)!, 1e-6, `resumed p${i} step ${k + 1}`);
    }
  });
});
