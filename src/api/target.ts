import { posix } from 'node:path';
import { invalid } from '../common/errors';
import { API_VERSION, MIN_API_VERSION } from './headers';

// The swarm resources: whatever the form of a request for them, it is answered
// by Shoal and never reaches the host's dockerd (which must stay out of swarm
// mode). Prefix match without a segment boundary: no dockerd route starts with
// these letters, so "/swarmx" is simply Shoal's 404 too.
export const OWNED_PREFIXES = ['/swarm', '/nodes', '/services', '/tasks', '/secrets', '/configs'] as const;

export interface RequestTarget {
  // The path without its version prefix, still percent-encoded: what the router matches.
  path: string;
  query: URLSearchParams;
  version?: string;
  // The path as dockerd would route it: percent-decoded, dot segments and
  // repeated slashes resolved, version prefix removed. Decides ownership.
  canonical: string;
  // The same before dot segments are resolved ("/nodes/.." is still a nodes path).
  decoded: string;
  // The target in origin form (path?query as received): what is forwarded.
  origin: string;
}

// dockerd routes /v{version:[0-9.]+}/... (gorilla mux), so "/v1/", "/v1.41.0/"
// are version prefixes there too and must be here.
const VERSIONED = /^\/v([0-9.]+)(\/.*|)$/;
const ABSOLUTE = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/?#]*/;
const BAD_ESCAPE = /%(?![0-9a-fA-F]{2})/;
// Control characters, and '#' (no client sends a fragment; Go would keep it in the path).
const BAD_PATH_CHAR = /[\x00-\x20\x7f#]/; // eslint-disable-line no-control-regex

// Docker's versions.compare: dot-separated numbers, missing or non-numeric parts are 0.
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.');
  const pb = b.split('.');
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = Number.parseInt(pa[i] ?? '0', 10) || 0;
    const y = Number.parseInt(pb[i] ?? '0', 10) || 0;
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

// Percent-decoding the way Go's url package does it for a path (bytes, never a
// failure for non-UTF-8), as latin1 text: enough to compare with ASCII prefixes.
function decodePath(raw: string): string {
  return Buffer.from(raw.replace(/%([0-9a-fA-F]{2})/g, (_m, h: string) => String.fromCharCode(Number.parseInt(h, 16))), 'latin1').toString('latin1');
}

// Reads a request target (origin form, or absolute form reduced to its path)
// and checks it the way dockerd would before routing: malformed targets and
// API versions out of range are 400 with Docker's messages.
export function parseTarget(url: string): RequestTarget {
  let origin = url;
  if (!origin.startsWith('/')) {
    const m = ABSOLUTE.exec(origin);
    if (!m) throw invalid(`malformed request target ${JSON.stringify(url.slice(0, 200))}`);
    origin = origin.slice(m[0].length);
    if (!origin.startsWith('/')) origin = `/${origin}`;
  }
  const q = origin.indexOf('?');
  const rawPath = q < 0 ? origin : origin.slice(0, q);
  if (BAD_ESCAPE.test(rawPath)) throw invalid(`invalid URL escape in path ${JSON.stringify(rawPath.slice(0, 200))}`);
  const decoded = decodePath(rawPath);
  if (BAD_PATH_CHAR.test(decoded)) throw invalid(`invalid character in path ${JSON.stringify(decoded.slice(0, 200))}`);

  let path = rawPath;
  let version: string | undefined;
  const m = VERSIONED.exec(rawPath);
  if (m) {
    version = m[1]!;
    path = m[2] || '/';
    checkVersion(version);
  }
  let canonical = posix.normalize(decoded);
  const cm = VERSIONED.exec(canonical);
  if (cm) {
    // A version hidden behind escapes ("/v1%2e41/") is one for dockerd too.
    if (!m) checkVersion(cm[1]!);
    canonical = cm[2] || '/';
  }
  const dm = VERSIONED.exec(decoded.replace(/\/{2,}/g, '/'));
  const unresolved = dm ? dm[2] || '/' : decoded.replace(/\/{2,}/g, '/');
  return { path, query: new URLSearchParams(q < 0 ? '' : origin.slice(q + 1)), version, canonical, decoded: unresolved, origin };
}

function checkVersion(version: string): void {
  if (compareVersions(version, API_VERSION) > 0) {
    throw invalid(`client version ${version} is too new. Maximum supported API version is ${API_VERSION}`);
  }
  if (compareVersions(version, MIN_API_VERSION) < 0) {
    throw invalid(`client version ${version} is too old. Minimum supported API version is ${MIN_API_VERSION}`);
  }
}

// Owned if either reading of the path is: dockerd resolves dot segments by
// redirecting, and neither side of such a path is its business.
export function isOwnedTarget(t: Pick<RequestTarget, 'canonical' | 'decoded'>): boolean {
  return isOwnedPath(t.canonical) || isOwnedPath(t.decoded);
}

export function isOwnedPath(path: string): boolean {
  return OWNED_PREFIXES.some((p) => path.startsWith(p));
}
