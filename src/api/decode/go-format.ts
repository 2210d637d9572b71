// Go's fmt verbs for the values Docker's messages print.

// %q for the strings a request can hold: quotes, backslashes and control
// characters escaped.
export function goQuote(s: string): string {
  return JSON.stringify(s).replace(/\\u00([0-9a-f]{2})/g, '\\x$1').replace(/\u007f/g, '\\x7f');
}

// %g of a float64: the shortest digits, exponent form below 1e-4 and from
// 1e6 on, with an exponent of at least two digits ("1e-09").
export function goFloat(n: number): string {
  if (n === 0 || !Number.isFinite(n)) return String(n);
  const [mantissa, e] = n.toExponential().split('e') as [string, string];
  const exp = Number(e);
  if (exp >= -4 && exp < 6) return String(n);
  return `${mantissa}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
}
