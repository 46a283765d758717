// Native fused kernels (softmax, norms, activations, cross-entropy, attention, AdamW) against
// plain float64 loops written here from their definitions (the reference backend has no fused
// kernels; the op layer's composites are checked against these kernels elsewhere).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Tensor } from "../../src/tensor/tensor.ts";
import { assertClose, nat, randInt, randT, ref, skip, zerosT } from "./helpers.ts";

const f = () => {
  const k = nat().fused;
  assert.ok(k.softmax && k.norm && k.crossEntropy && k.attention && k.adamw && k.activation);
  return k as Required<typeof k>;
};
const vals = (t: Tensor) => t.toFloat64Array();

describe("native fused kernels", { skip }, () => {
  test("softmax / log-softmax forward and backward", () => {
    for (const [R, C] of [[1, 1], [7, 33], [3, 1023], [257, 7]])
      for (const log of [false, true]) {
        const x = randT([R, C], -5, 5);
        const y = zerosT([R, C]);
        f().softmax(x, y, log);
        const xv = vals(x);
        const want = new Float64Array(R * C);
        for (let r = 0; r < R; r++) {
          let m = -Infinity;
          for (let c = 0; c < C; c++) m = Math.max(m, xv[r * C + c]);
          let s = 0;
          for (let c = 0; c < C; c++) s += Math.exp(xv[r * C + c] - m);
          for (let c = 0; c < C; c++) want[r * C + c] = log ? xv[r * C + c] - m - Math.log(s) : Math.exp(xv[r * C + c] - m) / s;
        }
        assertClose(y, want, 1e-5, `softmax log=${log} ${R}x${C}`);
        const dy = randT([R, C]);
        const dx = zerosT([R, C]);
        f().softmaxBackward(y, dy, dx, log);
        const g = vals(dy);
        const wd = new Float64Array(R * C);
        for (let r = 0; r < R; r++) {
          let s = 0;
          for (let c = 0; c < C; c++) s += log ? g[r * C + c] : g[r * C + c] * want[r * C + c];
          for (let c = 0; c < C; c++) wd[r * C + c] = log ? g[r * C + c] - Math.exp(want[r * C + c]) * s : want[r * C + c] * (g[r * C + c] - s);
        }
        assertClose(dx, wd, 1e-5, `softmax bwd log=${log}`);
      }
  });

  test("layer norm / RMS norm forward and backward", () => {
    for (const [R, C] of [[1, 7], [7, 33], [33, 257], [2, 1023]])
      for (const rms of [false, true])
        for (const affine of [false, true]) {
          const x = randT([R, C], -2, 3);
          const w = affine ? randT([C]) : null;
          const b = affine && !rms ? randT([C]) : null;
          const [out, mean, rstd] = [zerosT([R, C]), zerosT([R]), zerosT([R])];
          f().norm(x, w, b, 1e-5, rms, out, mean, rstd);
          const xv = vals(x);
          const wv = w ? vals(w) : null;
          const bv = b ? vals(b) : null;
          const dy = randT([R, C]);
          const g = vals(dy);
          const want = new Float64Array(R * C);
          const wdx = new Float64Array(R * C);
          const wdw = new Float64Array(C);
          const wdb = new Float64Array(C);
          for (let r = 0; r < R; r++) {
            const row = xv.subarray(r * C, (r + 1) * C);
            const mu = rms ? 0 : row.reduce((a, v) => a + v, 0) / C;
            const varr = row.reduce((a, v) => a + (v - mu) ** 2, 0) / C;
            const rs = 1 / Math.sqrt(varr + 1e-5);
            let sg = 0;
            let sgx = 0;
            for (let c = 0; c < C; c++) {
              const xh = (row[c] - mu) * rs;
              want[r * C + c] = xh * (wv ? wv[c] : 1) + (bv ? bv[c] : 0);
              const gw = g[r * C + c] * (wv ? wv[c] : 1);
              sg += gw;
              sgx += gw * xh;
              wdw[c] += g[r * C + c] * xh;
              wdb[c] += g[r * C + c];
            }
            for (let c = 0; c < C; c++) {
              const xh = (row[c] - mu) * rs;
              const gw = g[r * C + c] * (wv ? wv[c] : 1);
              wdx[r * C + c] = rs * (gw - (rms ? 0 : sg / C) - (xh * sgx) / C);
            }
          }
          const what = `norm rms=${rms} affine=${affine} ${R}x${C}`;
          assertClose(out, want, 1e-5, what);
          const [dx, dw, db] = [zerosT([R, C]), w ? zerosT([C]) : null, b ? zerosT([C]) : null];
          f().normBackward(x, w, mean, rstd, dy, rms, dx, dw, db);
          assertClose(dx, wdx, 1e-5, `${what} dx`);
          if (dw) assertClose(dw, wdw, 1e-5, `${what} dw`);
          if (db) assertClose(db, wdb, 1e-5, `${what} db`);
        }
  });

  test("gelu / gelu_tanh / silu forward and backward", () => {
    const x = randT([1023 * 33], -6, 6);
    const xv = vals(x);
    const ev = new Float64Array(xv.length);
    const xs = new Tensor(Float64Array.from(xv, (v) => v / Math.SQRT2), "float64", x.shape);
    const e64 = zerosT(x.shape, "float64");
    ref.unary("erf", xs, e64);
    ev.set(vals(e64)); // erf(x / sqrt 2) from the reference's float64 erf
    const K = Math.sqrt(2 / Math.PI);
    const defs = {
      gelu: (v: number, i: number) => [0.5 * v * (1 + ev[i]), 0.5 * (1 + ev[i]) + (v * Math.exp(-0.5 * v * v)) / Math.sqrt(2 * Math.PI)],
      gelu_tanh: (v: number) => {
        const t = Math.tanh(K * (v + 0.044715 * v ** 3));
        return [0.5 * v * (1 + t), 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * K * (1 + 3 * 0.044715 * v * v)];
      },
      silu: (v: number) => {
        const s = 1 / (1 + Math.exp(-v));
        return [v * s, s * (1 + v * (1 - s))];
      },
    };
    const dy = randT(x.shape);
    const g = vals(dy);
    for (const kind of ["gelu", "gelu_tanh", "silu"] as const) {
      const [out, dx] = [zerosT(x.shape), zerosT(x.shape)];
      f().activation(kind, x, out);
      f().activationBackward(kind, x, dy, dx);
      const wo = xv.map((v, i) => defs[kind](v, i)[0]);
      const wd = xv.map((v, i) => defs[kind](v, i)[1] * g[i]);
      assertClose(out, wo, 1e-5, kind);
      assertClose(dx, wd, 1e-5, `${kind} backward`);
    }
  });

  test("cross-entropy with ignore_index and label smoothing", () => {
    for (const [N, C] of [[1, 1], [7, 33], [33, 1023], [4, 50257]])
      for (const ls of [0, 0.1]) {
        const x = randT([N, C], -4, 4);
        const t = randInt([N], 0, C);
        if (N > 2) t.data[1] = -100;
        const [loss, lse] = [zerosT([N]), zerosT([N])];
        f().crossEntropy(x, t, -100, ls, loss, lse);
        const xv = vals(x);
        const dloss = randT([N]);
        const wl = new Float64Array(N);
        const wd = new Float64Array(N * C);
        for (let r = 0; r < N; r++) {
          const row = xv.subarray(r * C, (r + 1) * C);
          const m = Math.max(...row);
          const l = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
          const tt = t.data[r];
          if (tt === -100) continue;
          const mean = row.reduce((a, v) => a + v, 0) / C;
          wl[r] = (1 - ls) * (l - row[tt]) + ls * (l - mean);
          for (let c = 0; c < C; c++) wd[r * C + c] = dloss.data[r] * (Math.exp(row[c] - l) - ls / C - (c === tt ? 1 - ls : 0));
        }
        assertClose(loss, wl, 1e-5, `ce ${N}x${C} ls=${ls}`);
        const d = zerosT([N, C]);
        f().crossEntropyBackward(x, t, lse, dloss, -100, ls, d);
        assertClose(d, wd, 1e-5, `ce backward ${N}x${C} ls=${ls}`);
      }
    const t = randInt([3], 0, 5);
    t.data[2] = 7;
    assert.throws(() => f().crossEntropy(randT([3, 5]), t, -100, 0, zerosT([3]), zerosT([3])), /out of range/);
  });

  test("attention forward and backward (causal, mask, GQA, S > T)", () => {
    const cases = [
      { B: 1, H: 1, Hkv: 1, T: 1, S: 1, D: 1, causal: false, mask: false },
      { B: 2, H: 4, Hkv: 2, T: 33, S: 33, D: 16, causal: true, mask: false },
      { B: 1, H: 3, Hkv: 1, T: 7, S: 257, D: 8, causal: true, mask: true },
      { B: 2, H: 2, Hkv: 2, T: 130, S: 70, D: 33, causal: false, mask: true },
      { B: 1, H: 2, Hkv: 1, T: 200, S: 200, D: 64, causal: true, mask: false },
    ];
    for (const c of cases) {
      const q = randT([c.B, c.H, c.T, c.D]);
      const k = randT([c.B, c.Hkv, c.S, c.D]);
      const v = randT([c.B, c.Hkv, c.S, c.D]);
      const mask = c.mask ? randT([c.B, 1, c.T, c.S], -2, 0) : null;
      const scale = 1 / Math.sqrt(c.D);
      const [out, lse] = [zerosT(q.shape), zerosT([c.B, c.H, c.T])];
      f().attention(q, k, v, mask, c.causal, scale, out, lse);
      const dout = randT(q.shape);
      const [dq, dk, dv] = [zerosT(q.shape), zerosT(k.shape), zerosT(v.shape)];
      f().attentionBackward(q, k, v, mask, c.causal, scale, out, lse, dout, dq, dk, dv);
      // naive reference
      const [qv, kv, vv, gv] = [vals(q), vals(k), vals(v), vals(dout)];
      const mv = mask ? vals(mask) : null;
      const wo = new Float64Array(q.size);
      const wl = new Float64Array(c.B * c.H * c.T);
      const [wdq, wdk, wdv] = [new Float64Array(q.size), new Float64Array(k.size), new Float64Array(v.size)];
      const rep = c.H / c.Hkv;
      for (let b = 0; b < c.B; b++)
        for (let h = 0; h < c.H; h++) {
          const qo = (b * c.H + h) * c.T * c.D;
          const ko = (b * c.Hkv + Math.floor(h / rep)) * c.S * c.D;
          for (let i = 0; i < c.T; i++) {
            const s = new Float64Array(c.S);
            let m = -Infinity;
            for (let j = 0; j < c.S; j++) {
              let acc = 0;
              for (let d = 0; d < c.D; d++) acc += qv[qo + i * c.D + d] * kv[ko + j * c.D + d];
              s[j] = acc * scale + (mv ? mv[(b * c.T + i) * c.S + j] : 0);
              if (c.causal && j > i + c.S - c.T) s[j] = -Infinity;
              m = Math.max(m, s[j]);
            }
            let sum = 0;
            for (let j = 0; j < c.S; j++) sum += Math.exp(s[j] - m);
            wl[(b * c.H + h) * c.T + i] = m + Math.log(sum);
            const p = s.map((x) => Math.exp(x - m) / sum);
            const dp = new Float64Array(c.S);
            let di = 0;
            for (let j = 0; j < c.S; j++) {
              for (let d = 0; d < c.D; d++) {
                wo[qo + i * c.D + d] += p[j] * vv[ko + j * c.D + d];
                dp[j] += gv[qo + i * c.D + d] * vv[ko + j * c.D + d];
              }
            }
            for (let j = 0; j < c.S; j++) di += p[j] * dp[j];
            for (let j = 0; j < c.S; j++) {
              const ds = p[j] * (dp[j] - di) * scale;
              for (let d = 0; d < c.D; d++) {
                wdv[ko + j * c.D + d] += p[j] * gv[qo + i * c.D + d];
                wdq[qo + i * c.D + d] += ds * kv[ko + j * c.D + d];
                wdk[ko + j * c.D + d] += ds * qv[qo + i * c.D + d];
              }
            }
          }
        }
      const what = JSON.stringify(c);
      assertClose(out, wo, 1e-5, `attention out ${what}`);
      assertClose(lse, wl, 1e-5, `attention lse ${what}`);
      assertClose(dq, wdq, 1e-5, `attention dq ${what}`);
      assertClose(dk, wdk, 1e-5, `attention dk ${what}`);
      assertClose(dv, wdv, 1e-5, `attention dv ${what}`);
    }
  });

  test("AdamW over several parameters (PyTorch semantics)", () => {
    const sizes = [1, 7, 33, 70000];
    const p = sizes.map((n) => randT([n]).data as Float32Array);
    const g = sizes.map((n) => randT([n]).data as Float32Array);
    const m = sizes.map((n) => randT([n], -0.1, 0.1).data as Float32Array);
    const v = sizes.map((n) => randT([n], 0, 0.1).data as Float32Array);
    const [P, M, V] = [p.map((a) => Float64Array.from(a)), m.map((a) => Float64Array.from(a)), v.map((a) => Float64Array.from(a))];
    const hp = { lr: [1e-3, 2e-3, 1e-2, 3e-4], beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: [0.01, 0, 0.1, 0.01], step: 3 };
    f().adamw(p, g, m, v, hp);
    const bc1 = 1 - hp.beta1 ** hp.step;
    const bc2 = 1 - hp.beta2 ** hp.step;
    for (let i = 0; i < sizes.length; i++) {
      for (let j = 0; j < sizes[i]; j++) {
        P[i][j] *= 1 - hp.lr[i] * hp.weightDecay[i];
        M[i][j] = hp.beta1 * M[i][j] + (1 - hp.beta1) * g[i][j];
        V[i][j] = hp.beta2 * V[i][j] + (1 - hp.beta2) * g[i][j] ** 2;
        P[i][j] -= ((hp.lr[i] / bc1) * M[i][j]) / (Math.sqrt(V[i][j]) / Math.sqrt(bc2) + hp.eps);
      }
      assertClose(p[i], P[i], 1e-5, `adamw param ${i}`);
      assertClose(m[i], M[i], 1e-5, `adamw m ${i}`);
      assertClose(v[i], V[i], 1e-5, `adamw v ${i}`);
    }
  });
});
