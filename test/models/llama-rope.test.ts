/** rope_scaling as HF's ROPE_INIT_FUNCTIONS compute inv_freq: default, linear, dynamic, llama3. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError } from "../../src/formats/hf-config.ts";
import { readRope, ropeInvFreq } from "../../src/models/common.ts";

const src = (raw: Record<string, unknown>) => ({ raw, file: "config.json" });
const close = (a: number, b: number) => Math.abs(a - b) <= 1e-6 * Math.abs(b);

test("default and linear: theta^(-2i/d), linear divides by the factor", () => {
  const d = ropeInvFreq(readRope(src({ rope_theta: 10000 }), 64, 10000, 2048), 10);
  d.forEach((v, i) => assert.ok(close(v, 10000 ** (-(2 * i) / 64))));
  const l = ropeInvFreq(readRope(src({ rope_scaling: { type: "linear", factor: 4 } }), 64, 10000, 2048), 10);
  l.forEach((v, i) => assert.ok(close(v, d[i] / 4)));
});

test("dynamic NTK: unchanged within max_position_embeddings, a larger base beyond", () => {
  const c = readRope(src({ rope_scaling: { type: "dynamic", factor: 2 } }), 64, 10000, 128);
  const d = ropeInvFreq(readRope(src({}), 64, 10000, 128), 1);
  assert.deepEqual(ropeInvFreq(c, 128), d);
  const long = ropeInvFreq(c, 256);
  const base = 10000 * ((2 * 256) / 128 - 1) ** (64 / 62);
  long.forEach((v, i) => assert.ok(close(v, base ** (-(2 * i) / 64))));
});

test("llama3: high frequencies kept, low frequencies divided by factor, smooth in between (Llama 3.1 settings)", () => {
  const rs = {
    rope_type: "llama3",
    factor: 8,
    low_freq_factor: 1,
    high_freq_factor: 4,
    original_max_position_embeddings: 8192,
  };
  const c = readRope(src({ rope_theta: 500000, rope_scaling: rs }), 128, 10000, 131072);
  const plain = ropeInvFreq(readRope(src({ rope_theta: 500000 }), 128, 10000, 131072), 1);
  const got = ropeInvFreq(c, 1);
  let kinds = 0;
  plain.forEach((f, i) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < 8192 / 4) assert.ok(close(got[i], f), `high ${i}`);
    else if (wavelen > 8192) assert.ok(close(got[i], f / 8), `low ${i}`);
    else {
      const s = (8192 / wavelen - 1) / (4 - 1);
      assert.ok(close(got[i], (1 - s) * (f / 8) + s * f), `medium ${i}`);
      kinds |= 4;
    }
    kinds |= wavelen < 2048 ? 1 : wavelen > 8192 ? 2 : 0;
  });
  assert.equal(kinds, 7, "all three bands are exercised");
  assert.throws(() => readRope(src({ rope_scaling: { rope_type: "yarn", factor: 4 } }), 64, 10000, 2048), ConfigError);
});
