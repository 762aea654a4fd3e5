// The statistics every bench script reports: one median and one spread for all of them.

/** The median of the finite values (NaN when there are none). */
export const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Half the interquartile range: the spread of the middle half of the rounds (none for fewer than two). */
export const halfIqr = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length < 2) return Number.NaN;
  const at = (q) => s[Math.round(q * (s.length - 1))];
  return (at(0.75) - at(0.25)) / 2;
};
