import { invalid } from '../errors';
import { goQuote } from './go-format';

// Query parameters read as dockerd reads them (moby api/server/httputils and
// the swarm routes). Every route takes its flags and numbers from here.

// httputils.BoolValue: false for "", "0", "no", "false", "none" (any case,
// trimmed), true for anything else. Used by e.g. `force`, `stdout`, `follow`.
export function boolValue(q: URLSearchParams, key: string): boolean {
  const s = (q.get(key) ?? '').trim().toLowerCase();
  return !(s === '' || s === '0' || s === 'no' || s === 'false' || s === 'none');
}

// strconv.ParseBool.
const TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);
export function parseGoBool(s: string): boolean | undefined {
  return TRUE.has(s) ? true : FALSE.has(s) ? false : undefined;
}

// A flag the swarm routes read with strconv.ParseBool when it is not empty
// (`status`, `insertDefaults`, `rotate*Token`); anything else is a 400 whose
// text the route gives (`describe` receives the raw value). Absent: false.
export function strictBool(q: URLSearchParams, key: string, describe: (raw: string) => string): boolean {
  const raw = q.get(key) ?? '';
  if (raw === '') return false;
  const b = parseGoBool(raw);
  if (b === undefined) throw invalid(describe(raw));
  return b;
}

// `invalid value for K: V: strconv.ParseBool: parsing "V": invalid syntax`, as
// errors.Wrapf(err, …) prints it (services `status`, `insertDefaults`).
export const wrappedParseBoolError = (key: string) => (raw: string): string =>
  `invalid value for ${key}: ${raw}: strconv.ParseBool: parsing ${goQuote(raw)}: invalid syntax`;

// strconv.ParseUint(s, 10, 64): digits only, no sign; the error as Go prints it.
export function parseGoUint(s: string): { value: number } | { error: string } {
  if (!/^[0-9]+$/.test(s)) return { error: `strconv.ParseUint: parsing ${goQuote(s)}: invalid syntax` };
  if (BigInt(s) >= 2n ** 64n) return { error: `strconv.ParseUint: parsing ${goQuote(s)}: value out of range` };
  return { value: Number(s) };
}

// strconv.ParseInt(s, 10, 64).
export function parseGoInt(s: string): { value: number } | { error: string } {
  if (!/^[+-]?[0-9]+$/.test(s)) return { error: `strconv.ParseInt: parsing ${goQuote(s)}: invalid syntax` };
  const n = BigInt(s);
  if (n >= 2n ** 63n || n < -(2n ** 63n)) return { error: `strconv.ParseInt: parsing ${goQuote(s)}: value out of range` };
  return { value: Number(s) };
}

// An object version (`?version=N`): `invalid <what> version '<raw>': <ParseUint error>`.
export function parseObjectVersion(raw: string | null, what: string): number {
  const r = parseGoUint(raw ?? '');
  if ('error' in r) throw invalid(`invalid ${what} version '${raw ?? ''}': ${r.error}`);
  return r.value;
}
