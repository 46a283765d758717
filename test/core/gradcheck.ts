/** Float64 central finite-difference gradient check for any function of tensors. */
import assert from "node:assert/strict";
import { backward } from "../../src/autograd/index.ts";
import { noGrad } from "../../src/autograd/index.ts";
import { mul, sum } from "../../src/ops/index.ts";
import { Generator } from "../../src/tensor/rng.ts";
import { type Tensor, randn } from "../../src/tensor/tensor.ts";
import { offsets } from "../../src/backend/reference/strided.ts";

/**
 * Checks d/dx sum(f(x) * g) against (f(x+h) - f(x-h)) / 2h for every element of every input that
 * requires grad (inputs may be non-contiguous views; perturbation goes through their storage).
 */
export function gradcheck(name: string, f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], opts: { h?: number; tol?: number; seed?: number } = {}): void {
  const h = opts.h ?? 1e-6;
  const tol = opts.tol ?? 1e-6;
  const out = f(...inputs);
  const g = randn(out.shape, { dtype: "float64", generator: new Generator(opts.seed ?? 7) });
  for (const x of inputs) x.grad = null;
  backward(sum(mul(out, g)));
  const objective = () => noGrad(() => sum(mul(f(...inputs), g)).item());
  for (const [k, x] of inputs.entries()) {
    if (!x.requiresGrad) continue;
    assert.ok(x.grad, `${name}: input ${k} got no gradient`);
    const analytic = x.grad.toFloat64Array();
    const offs = offsets(x);
    let worst = 0;
    let at = -1;
    let num = 0;
    for (let i = 0; i < offs.length; i++) {
      const o = offs[i];
      const v = x.data[o];
      x.data[o] = v + h;
      const fp = objective();
      x.data[o] = v - h;
      const fm = objective();
      x.data[o] = v;
      const n = (fp - fm) / (2 * h);
      const d = Math.abs(n - analytic[i]) / Math.max(1, Math.abs(n));
      if (d > worst) {
        worst = d;
        at = i;
        num = n;
      }
    }
    assert.ok(worst <= tol, `${name}: input ${k} ${JSON.stringify(x.shape)} element ${at}: analytic ${analytic[at]} vs numeric ${num} (rel diff ${worst.toExponential(2)})`);
  }
}
