/** Scalar special functions the reference kernels share, in float64. */

/** The error function. */
export function erf(x: number): number {
  // Abramowitz-Stegun 7.1.26 is too coarse for 1e-5 checks; use a series / continued fraction.
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // Maclaurin series, converges fast for |x| < 2.5
    let sum = x;
    let term = x;
    const x2 = x * x;
    for (let n = 1; n < 100; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction for large |x|
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (ax + f);
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  return x > 0 ? 1 - erfc : erfc - 1;
}
