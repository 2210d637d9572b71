import { invalid, type ShoalError } from '../errors';

// Request bodies read the way dockerd reads them: Go's encoding/json (Go 1.19,
// the toolchain of Docker 20.10) decoding into moby's API types. A JSON value
// (already parsed) and the Go type it goes into give the value Shoal keeps:
//   - object keys match struct fields exactly, else case-insensitively (the
//     first field in declaration order wins), unknown keys are dropped;
//   - the output has the canonical field names, in declaration order;
//   - a value of the wrong JSON type, or a number out of the Go type's range,
//     is refused with Go's own message, which dockerd returns as a 400;
//   - `null` leaves the Go value as it was (absent here), as Go does;
//   - a key seen twice (in any case) decodes into the same field again, so
//     objects merge and scalars take the last value.
// `decodeGo` never throws anything but a ShoalError of kind `invalid`.

export type GoType =
  | { kind: 'string'; name?: string }            // name: a named string type, e.g. swarm.RuntimeType
  | { kind: 'bool' }
  | { kind: 'int'; name: IntName }
  | { kind: 'float'; name: 'float32' | 'float64' }
  | { kind: 'bytes' }                             // []byte: a base64 string
  | { kind: 'slice'; elem: GoType; ptr?: boolean } // ptr: []*T
  | { kind: 'map'; elem: GoType }                 // map[string]T
  | { kind: 'struct'; pkg: string; name: string; fields: GoField[] };

export interface GoField { name: string; type: GoType; ptr?: boolean }

export type IntName = 'int' | 'int64' | 'uint64' | 'uint32' | 'time.Duration' | 'fs.FileMode';

// Bounds as JS numbers: beyond 2^53 the value was already rounded by JSON.parse.
const INT_RANGE: Record<IntName, [number, number]> = {
  'int': [-(2 ** 63), 2 ** 63],
  'int64': [-(2 ** 63), 2 ** 63],
  'time.Duration': [-(2 ** 63), 2 ** 63],
  'uint64': [0, 2 ** 64],
  'uint32': [0, 2 ** 32],
  'fs.FileMode': [0, 2 ** 32],
};
const FLOAT32_MAX = 3.4028234663852886e38;

// ---------- schema helpers, so type tables read like the Go source ----------
export const str = (name?: string): GoType => ({ kind: 'string', name });
export const bool: GoType = { kind: 'bool' };
export const int = (name: IntName): GoType => ({ kind: 'int', name });
export const float = (name: 'float32' | 'float64'): GoType => ({ kind: 'float', name });
export const bytes: GoType = { kind: 'bytes' };
export const slice = (elem: GoType, ptr = false): GoType => ({ kind: 'slice', elem, ptr });
export const map = (elem: GoType): GoType => ({ kind: 'map', elem });
// Fields given as [name, type] or [name, type, 'ptr'] (a pointer field: null clears it).
export function struct(qualified: string, fields: Array<[string, GoType] | [string, GoType, 'ptr']>): GoType & { kind: 'struct' } {
  const [pkg, name] = qualified.split('.') as [string, string];
  return { kind: 'struct', pkg, name, fields: fields.map(([n, type, p]) => ({ name: n, type, ptr: p === 'ptr' })) };
}

export function goTypeName(t: GoType): string {
  switch (t.kind) {
    case 'string': return t.name ?? 'string';
    case 'bool': return 'bool';
    case 'int': return t.name;
    case 'float': return t.name;
    case 'bytes': return '[]uint8';
    case 'slice': return `[]${t.ptr ? '*' : ''}${goTypeName(t.elem)}`;
    case 'map': return `map[string]${goTypeName(t.elem)}`;
    case 'struct': return `${t.pkg}.${t.name}`;
  }
}

// Where the decoder is, for Go's error text: the innermost struct and the
// field names from the root (array indexes and map keys are not part of it).
interface Context { struct?: string; path: readonly string[] }

function jsonKind(v: unknown): string {
  if (typeof v === 'string') return 'string';
  if (typeof v === 'number') return 'number';
  if (typeof v === 'boolean') return 'bool';
  if (Array.isArray(v)) return 'array';
  return 'object';
}

function typeError(value: string, t: GoType, ctx: Context): ShoalError {
  const into = ctx.struct !== undefined || ctx.path.length
    ? `Go struct field ${ctx.struct ?? ''}.${ctx.path.join('.')}`
    : 'Go value';
  return invalid(`json: cannot unmarshal ${value} into ${into} of type ${goTypeName(t)}`);
}

// Go's case folding for field names: ASCII letters, plus the Kelvin sign and
// the long s, which fold to k and s.
function fold(s: string): string {
  return s.replace(/[A-Z\u212a\u017f]/g, (c) => (c === '\u212a' ? 'k' : c === '\u017f' ? 's' : c.toLowerCase()));
}

interface FieldIndex { exact: Map<string, GoField>; folded: Map<string, GoField> }
const indexes = new WeakMap<GoType, FieldIndex>();
function fieldIndex(t: GoType & { kind: 'struct' }): FieldIndex {
  let ix = indexes.get(t);
  if (!ix) {
    ix = { exact: new Map(), folded: new Map() };
    for (const f of t.fields) {
      ix.exact.set(f.name, f);
      const k = fold(f.name);
      if (!ix.folded.has(k)) ix.folded.set(k, f); // the first in declaration order wins
    }
    indexes.set(t, ix);
  }
  return ix;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

// Go's base64.StdEncoding as encoding/json uses it for []byte: padded, strict,
// newlines skipped.
export function checkBase64(s: string): void {
  const text = s.replace(/[\r\n]/g, '');
  if (text.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(text)) return;
  const firstBad = /^[A-Za-z0-9+/]*/.exec(text)![0].length;
  // All characters valid but a quantum cut short: Go points at its start.
  const at = firstBad === text.length ? text.length - (text.length % 4) : firstBad;
  throw invalid(`illegal base64 data at input byte ${at}`);
}

// Decodes `value` into Go type `t`, starting from `prev` (what an earlier key
// of the same field left). Returns undefined for "nothing set".
function decodeValue(value: unknown, t: GoType, ptr: boolean, prev: unknown, ctx: Context): unknown {
  if (value === null) {
    // Pointers, slices and maps become nil; everything else is left alone.
    return ptr || t.kind === 'slice' || t.kind === 'map' || t.kind === 'bytes' ? undefined : prev;
  }
  switch (t.kind) {
    case 'string':
      if (typeof value !== 'string') throw typeError(jsonKind(value), t, ctx);
      return value;
    case 'bool':
      if (typeof value !== 'boolean') throw typeError(jsonKind(value), t, ctx);
      return value;
    case 'int': {
      if (typeof value !== 'number') throw typeError(jsonKind(value), t, ctx);
      const [min, max] = INT_RANGE[t.name];
      if (!Number.isInteger(value) || value < min || value >= max) throw typeError(`number ${value}`, t, ctx);
      return value;
    }
    case 'float':
      if (typeof value !== 'number') throw typeError(jsonKind(value), t, ctx);
      if (t.name === 'float32' && Math.abs(value) > FLOAT32_MAX) throw typeError(`number ${value}`, t, ctx);
      return value;
    case 'bytes':
      if (typeof value !== 'string') throw typeError(jsonKind(value), t, ctx);
      checkBase64(value);
      return value;
    case 'slice':
      if (!Array.isArray(value)) throw typeError(jsonKind(value), t, ctx);
      // A repeated key replaces the slice ("resets the slice length to zero").
      return value.map((v) => decodeValue(v, t.elem, t.ptr ?? false, undefined, ctx) ?? zero(t.elem, t.ptr ?? false));
    case 'map': {
      if (!isObject(value)) throw typeError(jsonKind(value), t, ctx);
      const out: Record<string, unknown> = isObject(prev) ? { ...prev } : {};
      for (const [k, v] of Object.entries(value)) {
        // Go stores a fresh element for each key (a null one is the zero value).
        const d = decodeValue(v, t.elem, false, undefined, ctx);
        // defineProperty: a key such as "__proto__" is a plain key in Go.
        Object.defineProperty(out, k, { value: d === undefined ? zero(t.elem, false) : d, enumerable: true, writable: true, configurable: true });
      }
      return out;
    }
    case 'struct': {
      if (!isObject(value)) throw typeError(jsonKind(value), t, ctx);
      const ix = fieldIndex(t);
      const got: Record<string, unknown> = isObject(prev) ? { ...prev } : {};
      for (const [k, v] of Object.entries(value)) {
        const f = ix.exact.get(k) ?? ix.folded.get(fold(k));
        if (!f) continue; // unknown fields are ignored, as Go does
        const d = decodeValue(v, f.type, f.ptr ?? false, got[f.name], { struct: t.name, path: [...ctx.path, f.name] });
        if (d === undefined) delete got[f.name];
        else got[f.name] = d;
      }
      // Declaration order, whatever order the keys came in.
      const out: Record<string, unknown> = {};
      for (const f of t.fields) if (got[f.name] !== undefined) out[f.name] = got[f.name];
      return out;
    }
  }
}

// What a JSON null inside an array or map decodes to: Go's zero value (nil
// pointers, slices and maps are left out of Shoal's objects).
function zero(t: GoType, ptr: boolean): unknown {
  if (ptr) return null;
  switch (t.kind) {
    case 'string': case 'bytes': return '';
    case 'bool': return false;
    case 'int': case 'float': return 0;
    case 'struct': return {};
    default: return null;
  }
}

export function decodeGo<T>(value: unknown, t: GoType): T {
  const out = decodeValue(value, t, false, undefined, { path: [] });
  return (out === undefined ? zero(t, false) : out) as T;
}
