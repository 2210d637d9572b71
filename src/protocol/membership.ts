// The wire contract of manager membership: a node that holds a manager
// certificate (from ca.IssueNodeCertificate with the manager token, or a
// renewal after a promotion) asks any manager to make it an etcd member.
// The answer carries the swarm's CA key and data key: they travel only over
// this method, whose access is 'manager' (a worker's certificate is refused
// by the transport before the handler runs).
import { isIP } from 'node:net';
import { invalid } from '../common/errors';
import type { UnaryMethod } from '../rpc/transport';

export interface JoinManagerRequest {
  PeerURL: string;     // https://ADVERTISE_IP:PORT, where the new member's etcd listens for peers
}

export interface JoinManagerResponse {
  InitialCluster: string;  // etcd's --initial-cluster for the new member (name=url,...)
  MemberID: string;        // the etcd member made for it (a learner until it has caught up)
  CAKey: string;           // PEM (PKCS#8): the swarm CA's private key
  DataKey: string;         // base64: the key that seals secret values (32 bytes)
}

const MAX_URL = 300;
const MAX_CLUSTER = 64 * 1024;
const MAX_PEM = 16 * 1024;

function obj(raw: unknown, what: string): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw invalid(`${what}: not an object`);
  return raw as Record<string, unknown>;
}

function str(o: Record<string, unknown>, key: string, what: string, max: number): string {
  const v = o[key];
  if (typeof v !== 'string' || v === '') throw invalid(`${what}: ${key} must be a non-empty string`);
  if (v.length > max) throw invalid(`${what}: ${key} is longer than ${max} characters`);
  return v;
}

// https://IP:PORT only: etcd peers are reached over TLS, by address.
export function checkPeerUrl(url: string, what = 'peer URL'): string {
  const m = /^https:\/\/(\[[0-9a-fA-F:.]+\]|[0-9.]+):(\d{1,5})$/.exec(url);
  const host = m?.[1]?.replace(/^\[|\]$/g, '');
  if (!m || !host || !isIP(host) || Number(m[2]) < 1 || Number(m[2]) > 65535) throw invalid(`${what}: ${url} is not https://IP:PORT`);
  return url;
}

export function checkJoinManagerRequest(raw: unknown): JoinManagerRequest {
  const o = obj(raw, 'JoinManager request');
  return { PeerURL: checkPeerUrl(str(o, 'PeerURL', 'JoinManager request', MAX_URL), 'JoinManager request: PeerURL') };
}

export function checkJoinManagerResponse(raw: unknown): JoinManagerResponse {
  const what = 'JoinManager response';
  const o = obj(raw, what);
  const initial = str(o, 'InitialCluster', what, MAX_CLUSTER);
  for (const part of initial.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 1) throw invalid(`${what}: InitialCluster entry ${part} is not name=url`);
    checkPeerUrl(part.slice(eq + 1), `${what}: InitialCluster`);
  }
  const memberId = str(o, 'MemberID', what, 32);
  if (!/^\d+$/.test(memberId)) throw invalid(`${what}: MemberID is not a member ID`);
  const caKey = str(o, 'CAKey', what, MAX_PEM);
  if (!/^-----BEGIN PRIVATE KEY-----\r?\n[A-Za-z0-9+/=\r\n]+-----END PRIVATE KEY-----\r?\n?$/.test(caKey)) throw invalid(`${what}: CAKey is not one PEM private key`);
  const dataKey = str(o, 'DataKey', what, 64);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(dataKey) || Buffer.from(dataKey, 'base64').length !== 32) throw invalid(`${what}: DataKey is not 32 bytes of base64`);
  return { InitialCluster: initial, MemberID: memberId, CAKey: caKey, DataKey: dataKey };
}

export const JoinManager: UnaryMethod<JoinManagerRequest, JoinManagerResponse> = {
  name: 'membership.JoinManager',
  access: 'manager',
  request: checkJoinManagerRequest,
  response: checkJoinManagerResponse,
};
