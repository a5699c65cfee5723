/** Nearest-rank percentile of `xs` (`q` in 0..1; with fewer than 100 samples p99 is the largest); NaN when empty. */
export function percentile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? NaN;
}
