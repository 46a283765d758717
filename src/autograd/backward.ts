/**
 * Reverse-mode autodiff over the graph recorded by ops: topological order from the root, then each
 * node's VJP in reverse, accumulating into leaf `.grad`. Gradients are computed without recording.
 */
import { add } from "../ops/elementwise.ts";
import { cast, clone } from "../ops/view.ts";
import { AutogradError, fmtShape } from "../tensor/errors.ts";
import { shapesEqual } from "../tensor/shape.ts";
import { type Tensor, ones, zeros } from "../tensor/tensor.ts";
import { GradReleaser } from "./release.ts";
import { setGradEnabled } from "./tape.ts";

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const c = inputs[i];
      if (c.requiresGrad && !seen.has(c)) {
        seen.add(c);
        stack.push([c, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order.reverse();
}

export interface BackwardOptions {
  /** Return the gradients of these tensors (leaves or not). */
  capture?: readonly Tensor[];
  /** Accumulate into leaves' `.grad` (default true). */
  accumulate?: boolean;
}

/** The engine behind `backward`, `grad` and `checkpoint`. */
export function runBackward(root: Tensor, grad: Tensor, opts: BackwardOptions = {}): Map<Tensor, Tensor> {
  const captured = new Set(opts.capture ?? []);
  const out = new Map<Tensor, Tensor>();
  const grads = new Map<Tensor, Tensor>([[root, grad]]);
  // Inside a step scope: dead intermediate gradients go back to the pool as soon as possible.
  const rel = GradReleaser.start();
  rel?.hold(grad);
  const order = topoOrder(root);
  rel?.plan(order, root, captured);
  const prev = setGradEnabled(false);
  try {
    for (const t of order) {
      const g = grads.get(t);
      if (!g) {
        rel?.passed(t);
        continue;
      }
      grads.delete(t);
      rel?.unhold(g);
      if (captured.has(t)) {
        out.set(t, g);
        rel?.pin(g);
      }
      if (!t.node) {
        if (opts.accumulate !== false && t.requiresGrad) {
          const gg = cast(g, t.dtype);
          // A fresh copy unless this pass owns gg alone: the same gradient tensor may flow to
          // several leaves, and optimisers and clipping modify .grad in place.
          t.grad = t.grad ? add(t.grad, gg) : rel?.adopt(gg) ? gg : clone(gg);
          rel?.drop(gg);
        }
        rel?.drop(g);
        rel?.passed(t);
        continue;
      }
      const gs = t.node.vjp(g);
      const dead = [g];
      t.node.inputs.forEach((inp, i) => {
        const gi = gs[i];
        if (!gi || !inp.requiresGrad) return;
        if (!shapesEqual(gi.shape, inp.shape)) {
          throw new AutogradError(`backward: ${t.node?.op} produced a gradient of shape ${fmtShape(gi.shape)} for an input of shape ${fmtShape(inp.shape)}`);
        }
        const acc = grads.get(inp);
        const sum = acc ? add(acc, gi) : gi;
        grads.set(inp, sum);
        rel?.hold(sum);
        if (acc) {
          rel?.unhold(acc);
          dead.push(acc, gi);
        }
      });
      if (rel) {
        for (const d of dead) rel.drop(d);
        rel.passed(t);
      }
    }
  } finally {
    setGradEnabled(prev);
  }
  return out;
}

/**
 * Backpropagates from `root` into the `.grad` of every leaf that requires grad. A non-scalar root
 * needs an explicit upstream gradient of its shape.
 * @example const loss = mse(model.forward(x), y); backward(loss);
 */
export function backward(root: Tensor, grad?: Tensor): void {
  if (!root.requiresGrad) throw new AutogradError("backward: the tensor does not require grad (no input had requiresGrad, or it was computed under noGrad)");
  if (!grad) {
    if (root.size !== 1) throw new AutogradError(`backward: a non-scalar tensor of shape ${fmtShape(root.shape)} needs an explicit gradient (grad can be implicitly created only for scalar outputs)`);
    grad = ones(root.shape, { dtype: root.dtype });
  } else if (!shapesEqual(grad.shape, root.shape)) {
    throw new AutogradError(`backward: gradient shape ${fmtShape(grad.shape)} does not match tensor shape ${fmtShape(root.shape)}`);
  }
  runBackward(root, grad);
}

/** Gradients of `output` (scalar unless `gradOutput` is given) with respect to `inputs`, without touching any `.grad`. */
export function grad(output: Tensor, inputs: readonly Tensor[], gradOutput?: Tensor): Tensor[] {
  if (!output.requiresGrad) throw new AutogradError("grad: the output does not depend on any input that requires grad");
  if (!gradOutput && output.size !== 1) throw new AutogradError(`grad: output of shape ${fmtShape(output.shape)} is not a scalar; pass gradOutput`);
  const g = gradOutput ?? ones(output.shape, { dtype: output.dtype });
  const m = runBackward(output, g, { capture: inputs, accumulate: false });
  return inputs.map((t) => m.get(t) ?? zeros(t.shape, { dtype: t.dtype }));
}
