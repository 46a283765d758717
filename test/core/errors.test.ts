// Bad input gives typed errors that name the op and the shapes/values involved.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as F from "../../src/ops/index.ts";
import { DTypeError, IndexError, ShapeError, ValueError } from "../../src/tensor/errors.ts";
import { tensor, zeros } from "../../src/tensor/tensor.ts";

const throwsWith = (fn: () => unknown, type: new (...a: never[]) => Error, re: RegExp) =>
  assert.throws(fn, (e: Error) => e instanceof type && re.test(e.message), `expected ${type.name} matching ${re}`);

test("mismatched shapes", () => {
  throwsWith(() => F.add(zeros([2, 3]), zeros([4, 3])), ShapeError, /add: shapes \[2,3\] and \[4,3\] cannot be broadcast/);
  throwsWith(() => F.matmul(zeros([2, 3]), zeros([4, 5])), ShapeError, /matmul: inner dimensions differ: \[2,3\] @ \[4,5\]/);
  throwsWith(() => F.linear(zeros([2, 3]), zeros([4, 5])), ShapeError, /linear: input \[2,3\] does not match weight \[4,5\]/);
  throwsWith(() => F.reshape(zeros([2, 3]), [4, 2]), ShapeError, /reshape: shape \[4,2\] is invalid for input of shape \[2,3\]/);
  throwsWith(() => F.cat([zeros([2, 3]), zeros([3, 3])], 1), ShapeError, /cat: shapes \[2,3\], \[3,3\] differ outside dim 1/);
  throwsWith(() => F.conv2d(zeros([1, 3, 5, 5]), zeros([4, 2, 3, 3])), ShapeError, /conv2d: input \[1,3,5,5\] with 3 channels does not match weight \[4,2,3,3\]/);
  throwsWith(() => F.expand(zeros([2, 3]), [4, 3]), ShapeError, /expand: cannot expand \[2,3\] to \[4,3\]/);
  throwsWith(() => F.permute(zeros([2, 3]), [0, 0]), ShapeError, /permute: dims \[0,0\] are not a permutation/);
  throwsWith(() => F.scaledDotProductAttention(zeros([1, 3, 2, 4]), zeros([1, 2, 2, 4]), zeros([1, 2, 2, 4])), ShapeError, /attention: incompatible/);
});

test("wrong dtypes", () => {
  throwsWith(() => F.embedding(zeros([4, 2]), tensor([0, 1])), DTypeError, /embedding: ids must be int32, got float32/);
  throwsWith(() => F.where(zeros([2]), 1, 0), DTypeError, /where: condition must be bool, got float32/);
  throwsWith(() => F.crossEntropy(zeros([2, 3]), tensor([0, 1])), DTypeError, /crossEntropy: targets must be int32/);
  throwsWith(() => F.matmul(zeros([2, 2], { dtype: "int32" }), zeros([2, 2])), DTypeError, /matmul: float operands required, got int32 @ float32/);
  throwsWith(() => zeros([2], { dtype: "int32" }).requiresGrad_(), DTypeError, /only float32\/float64/);
});

test("out-of-range indices and dims", () => {
  throwsWith(() => F.embedding(zeros([4, 2]), tensor(new Int32Array([0, 4]))), IndexError, /indexSelect: index 4 out of range for dim 0 of \[4,2\] of size 4/);
  throwsWith(() => F.gather(zeros([2, 3]), 1, tensor(new Int32Array([0, -1]), { shape: [2, 1] })), IndexError, /gather: index -1 out of range/);
  throwsWith(() => F.sum(zeros([2, 3]), 2), IndexError, /sum: dimension 2 out of range for a 2-d tensor/);
  throwsWith(() => F.select(zeros([2, 3]), 1, 3), IndexError, /select: index 3 out of range for dim 1 of size 3/);
  throwsWith(() => F.crossEntropy(zeros([2, 3]), tensor(new Int32Array([0, 3]))), ValueError, /crossEntropy: target 3 out of range for 3 classes/);
});
