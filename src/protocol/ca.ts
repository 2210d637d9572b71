// The CA's wire contract: how a node gets the swarm's root certificate, joins
// with a token (and gets its first certificate), and renews its certificate.
// Also the join token's format, shared by the side that makes tokens
// (manager/ca) and the side that reads them (node/join).
import { createHash } from 'node:crypto';
import { invalid } from '../common/errors';
import { managerList, num, version, type ManagerList } from './checks';
import type { UnaryMethod } from '../rpc/transport';

export type Role = 'manager' | 'worker';
export type Availability = 'active' | 'pause' | 'drain';

export type GetRootCARequest = Record<string, never>;
export interface GetRootCAResponse { Certificate: string }

export interface IssueNodeCertificateRequest {
  Token: string;
  CSR: string; // PEM "CERTIFICATE REQUEST"
  Availability?: Availability;
  AdvertiseAddr?: string;
  DataPathAddr?: string;
  ListenAddr?: string;
  Hostname?: string;
}
export interface IssueNodeCertificateResponse {
  NodeID: string;
  Role: Role;
  ClusterID: string;
  Certificate: string; // PEM chain, the node's certificate first
  CACertificate: string;
  // The managers and which of them leads, as the answering manager knows them
  // (absent from an older manager): a new node's first session goes to one
  // that does not lead (agent/remote-control-plane.ts).
  Managers?: ManagerList;
  // The heartbeat interval in force (ms; absent from an older manager): the
  // node's first connection pings at the rate it asks (agent/keepalive.ts).
  HeartbeatMs?: number;
}

export interface RenewNodeCertificateRequest { CSR: string }
// NodeVersion: the node object's Version.Index the role was read from (node/role.ts).
// CACertificate: the roots the node is to trust from now on (both during a root rotation); absent from an older manager.
export interface RenewNodeCertificateResponse { Certificate: string; Role: Role; NodeVersion?: number; CACertificate?: string }

// ---------------------------------------------------------------------------
// Checks (every message from a peer goes through one).

const MAX_PEM = 64 * 1024;
const MAX_CSR = 16 * 1024;
const MAX_ADDR = 256;
const MAX_HOSTNAME = 255;
const MAX_TOKEN = 256;

function obj(raw: unknown, what: string): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid(`${what}: not an object`);
  return raw as Record<string, unknown>;
}

function str(o: Record<string, unknown>, key: string, what: string, max: number): string {
  const v = o[key];
  if (typeof v !== 'string') throw invalid(`${what}: ${key} must be a string`);
  if (v.length > max) throw invalid(`${what}: ${key} is longer than ${max} characters`);
  return v;
}

function optStr(o: Record<string, unknown>, key: string, what: string, max: number): string | undefined {
  if (o[key] === undefined || o[key] === null || o[key] === '') return undefined;
  return str(o, key, what, max);
}

function pemBlocks(text: string, label: string): number {
  const block = new RegExp(`-----BEGIN ${label}-----\\r?\\n(?:[A-Za-z0-9+/=]{1,76}\\r?\\n)+-----END ${label}-----\\r?\\n?`, 'g');
  const rest = text.replace(block, '').trim();
  if (rest !== '') return 0;
  return text.match(block)?.length ?? 0;
}

function certificates(o: Record<string, unknown>, key: string, what: string): string {
  const v = str(o, key, what, MAX_PEM);
  if (pemBlocks(v, 'CERTIFICATE') === 0) throw invalid(`${what}: ${key} is not PEM certificates`);
  return v;
}

function csr(o: Record<string, unknown>, what: string): string {
  const v = str(o, 'CSR', what, MAX_CSR);
  if (pemBlocks(v, 'CERTIFICATE REQUEST') !== 1) throw invalid(`${what}: CSR is not one PEM certificate request`);
  return v;
}

// IDs are 25 base-36 characters; a little slack, but never anything else.
const ID_RE = /^[0-9a-z]{1,64}$/;
function id(o: Record<string, unknown>, key: string, what: string): string {
  const v = str(o, key, what, 64);
  if (!ID_RE.test(v)) throw invalid(`${what}: ${key} is not a node or cluster ID`);
  return v;
}

function role(o: Record<string, unknown>, what: string): Role {
  const v = o.Role;
  if (v !== 'manager' && v !== 'worker') throw invalid(`${what}: Role must be manager or worker`);
  return v;
}

export function checkGetRootCARequest(raw: unknown): GetRootCARequest {
  obj(raw, 'GetRootCACertificate request');
  return {};
}

export function checkGetRootCAResponse(raw: unknown): GetRootCAResponse {
  const what = 'GetRootCACertificate answer';
  return { Certificate: certificates(obj(raw, what), 'Certificate', what) };
}

export function checkIssueRequest(raw: unknown): IssueNodeCertificateRequest {
  const what = 'IssueNodeCertificate request';
  const o = obj(raw, what);
  const out: IssueNodeCertificateRequest = { Token: str(o, 'Token', what, MAX_TOKEN), CSR: csr(o, what) };
  const availability = optStr(o, 'Availability', what, 16);
  if (availability !== undefined) {
    if (availability !== 'active' && availability !== 'pause' && availability !== 'drain') throw invalid(`${what}: Availability must be active, pause or drain`);
    out.Availability = availability;
  }
  for (const k of ['AdvertiseAddr', 'DataPathAddr', 'ListenAddr'] as const) {
    const v = optStr(o, k, what, MAX_ADDR);
    if (v !== undefined) out[k] = v;
  }
  const hostname = optStr(o, 'Hostname', what, MAX_HOSTNAME);
  if (hostname !== undefined) out.Hostname = hostname;
  return out;
}

export function checkIssueResponse(raw: unknown): IssueNodeCertificateResponse {
  const what = 'IssueNodeCertificate answer';
  const o = obj(raw, what);
  return {
    NodeID: id(o, 'NodeID', what),
    Role: role(o, what),
    ClusterID: id(o, 'ClusterID', what),
    Certificate: certificates(o, 'Certificate', what),
    CACertificate: certificates(o, 'CACertificate', what),
    ...(o.Managers !== undefined ? { Managers: managerList(o.Managers, `${what}: Managers`) } : {}),
    ...(o.HeartbeatMs !== undefined ? { HeartbeatMs: heartbeatMs(o.HeartbeatMs, `${what}: HeartbeatMs`) } : {}),
  };
}

function heartbeatMs(v: unknown, what: string): number {
  const ms = num(v, what);
  if (!Number.isInteger(ms) || ms <= 0) throw invalid(`${what}: must be a positive whole number`);
  return ms;
}

export function checkRenewRequest(raw: unknown): RenewNodeCertificateRequest {
  const what = 'RenewNodeCertificate request';
  return { CSR: csr(obj(raw, what), what) };
}

export function checkRenewResponse(raw: unknown): RenewNodeCertificateResponse {
  const what = 'RenewNodeCertificate answer';
  const o = obj(raw, what);
  return {
    Certificate: certificates(o, 'Certificate', what), Role: role(o, what),
    ...(o.NodeVersion !== undefined ? { NodeVersion: version(o.NodeVersion, `${what}: NodeVersion`) } : {}),
    ...(o.CACertificate !== undefined ? { CACertificate: certificates(o, 'CACertificate', what) } : {}),
  };
}

// ---------------------------------------------------------------------------
// Methods

export const GetRootCACertificate: UnaryMethod<GetRootCARequest, GetRootCAResponse> = {
  name: 'ca.GetRootCACertificate', access: 'anyone', request: checkGetRootCARequest, response: checkGetRootCAResponse,
};

// Joining: no certificate yet, the token is the credential.
export const IssueNodeCertificate: UnaryMethod<IssueNodeCertificateRequest, IssueNodeCertificateResponse> = {
  name: 'ca.IssueNodeCertificate', access: 'anyone', request: checkIssueRequest, response: checkIssueResponse,
};

// Renewal: the caller's certificate says who it is; the new certificate
// carries the role the node has now (how promote/demote reach a node).
export const RenewNodeCertificate: UnaryMethod<RenewNodeCertificateRequest, RenewNodeCertificateResponse> = {
  name: 'ca.RenewNodeCertificate', access: 'node', request: checkRenewRequest, response: checkRenewResponse,
};

// ---------------------------------------------------------------------------
// Join tokens, as Docker's: SWMTKN-1-<digest>-<secret>, the digest being the
// sha256 of the root CA bundle exactly as GetRootCACertificate serves it (PEM
// bytes: covering the whole bundle, so nobody can slip in another root),
// written in base 36 on 50 characters; the secret 128 random bits in base 36
// on 25. SWMTKN-2-<0|1>-... (FIPS) is read too.

export const INVALID_JOIN_TOKEN = 'invalid join token';
export const WRONG_JOIN_TOKEN = 'rpc error: code = InvalidArgument desc = A valid join token is necessary to join this cluster';
const DIGEST_LEN = 50;
const SECRET_LEN = 25;

export interface ParsedJoinToken {
  version: 1 | 2;
  fips: boolean;
  rootDigest: string; // sha256, 64 lowercase hex
  secret: string;
}

export function parseJoinToken(token: string): ParsedJoinToken {
  const parts = token.split('-');
  if (parts.length < 4 || parts[0] !== 'SWMTKN') throw invalid(INVALID_JOIN_TOKEN);
  let version: 1 | 2;
  let fips = false;
  if (parts[1] === '1' && parts.length === 4) version = 1;
  else if (parts[1] === '2' && parts.length === 5 && (parts[2] === '0' || parts[2] === '1')) { version = 2; fips = parts[2] === '1'; }
  else throw invalid(INVALID_JOIN_TOKEN);
  const secret = parts[parts.length - 1];
  const digest36 = parts[parts.length - 2];
  if (digest36.length !== DIGEST_LEN || secret.length !== SECRET_LEN || !/^[0-9a-z]+$/.test(digest36) || !/^[0-9a-z]+$/.test(secret)) throw invalid(INVALID_JOIN_TOKEN);
  const hex = base36ToBigInt(digest36).toString(16);
  if (hex.length > 64) throw invalid(INVALID_JOIN_TOKEN);
  return { version, fips, rootDigest: hex.padStart(64, '0'), secret };
}

function base36ToBigInt(s: string): bigint {
  let n = 0n;
  for (const c of s) n = n * 36n + BigInt(parseInt(c, 36));
  return n;
}

// The sha256 (hex) a token carries for a root CA bundle (PEM as served).
export function rootCADigest(caPem: string): string {
  return createHash('sha256').update(caPem, 'utf8').digest('hex');
}

// The digest part of a token for this root CA bundle.
export function joinTokenDigestPart(caPem: string): string {
  return BigInt('0x' + rootCADigest(caPem)).toString(36).padStart(DIGEST_LEN, '0');
}

export const JOIN_TOKEN_SECRET_LEN = SECRET_LEN;

// Docker's text when the CA a manager serves is not the one the token names.
export function caMismatch(expectedDigest: string): string {
  return `remote CA does not match fingerprint. Expected: ${expectedDigest}`;
}

// Does the served root CA bundle match the token? Docker's digest covers the
// PEM bytes; tokens made by Shoal before this release hashed the one
// certificate's DER, still accepted when the bundle is that one certificate.
export function tokenMatchesCA(parsed: ParsedJoinToken, caPem: string): boolean {
  if (rootCADigest(caPem) === parsed.rootDigest) return true;
  if (pemBlocks(caPem, 'CERTIFICATE') !== 1) return false;
  const der = Buffer.from(caPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  return createHash('sha256').update(der).digest('hex') === parsed.rootDigest;
}

// ---------------------------------------------------------------------------
// Root CA rotation, as nodes see it: the roots to trust now (both while a
// rotation runs) and the key of the CA their certificate should come from
// (managers: the cluster object; workers: their session).

export interface WantedTrust { bundle: string; issuerPublicKey: string }

// A node renews when it trusts other roots than wanted, or its certificate is
// not from the wanted CA (the renewal's answer brings both).
export function nodeNeedsRenewal(held: { bundle: string; issuedByWanted: boolean }, want: WantedTrust): boolean {
  if (!want.bundle.trim() || !want.issuerPublicKey) return false; // nothing known yet
  return held.bundle.trim() !== want.bundle.trim() || !held.issuedByWanted;
}
