import { createPrivateKey, createPublicKey, hkdfSync } from 'node:crypto';
import { NETWORK_KEY_BYTES, type ViewKey } from '../../../protocol/network-view';
import { isIPv4 } from './names';

// Encrypted overlays (`--opt encrypted`), the pure half: docs/ARCHITECTURE.md,
// "Encrypted overlays". The VXLAN traffic of an encrypted network goes between
// nodes inside a WireGuard tunnel: each node has one WireGuard interface with
// an IPv6 tunnel address made from its data-path address, and the network's
// VXLAN port uses tunnel addresses as its local and remote ends, so that on
// the underlay only WireGuard's UDP (port TUNNEL_PORT) is seen.
//
// Keys: a node's WireGuard key pair is derived from the swarm's primary
// data-path key (made and rotated by the leader, sent only to nodes with an
// encrypted network) and the node's ID. So every node that holds the key
// knows every peer's public key without one more message, as every node of a
// Docker swarm shares its IPsec key; WireGuard itself renews the session keys
// every two minutes, with forward secrecy.

export const TUNNEL_PREFIX = 'sw-';
// UDP: Docker Swarm's port 7946 (its gossip, which Shoal does not use), so a
// firewall opened for a swarm (2377/tcp, 7946/tcp+udp, 4789/udp) lets it through.
export const TUNNEL_PORT = 7946;
// WireGuard over IPv4 adds 60 bytes (IP 20 + UDP 8 + WireGuard 32); VXLAN over
// IPv6 then adds 70 (IP 40 + UDP 8 + VXLAN 8 + Ethernet 14). An encrypted
// network's MTU is the plain one (underlay - 50) minus the difference.
export const TUNNEL_OVERHEAD = 60;
// A keepalive also makes a peer start its handshake as soon as it is
// configured: a node whose tunnel was made again (or whose key changed) is
// heard at once, instead of when the other side gives up its old session
// (WireGuard: 15 s without an answer).
export const KEEPALIVE_S = 25;
export const ENCRYPTED_EXTRA_OVERHEAD = TUNNEL_OVERHEAD + 70 - 50;
// fd00::/8 (unique local): fdc5:4f41:1::/96 followed by the node's IPv4 address.
const TUNNEL_NET = 'fdc5:4f41:1::';
export const TUNNEL_PREFIX_LEN = 96;

// The interface is named after the node: WireGuard's userspace sockets
// (/var/run/wireguard/NAME.sock) are shared by every lab host on a machine.
export const tunnelName = (nodeId: string): string => `${TUNNEL_PREFIX}${nodeId.slice(0, 12)}`;
export const isTunnelName = (ifname: string): boolean => ifname.startsWith(TUNNEL_PREFIX) && ifname.length > TUNNEL_PREFIX.length;

// "10.77.0.2" → "fdc5:4f41:1::a4d:2".
export function tunnelAddr(ipv4: string): string {
  if (!isIPv4(ipv4)) throw new Error(`not an IPv4 address: ${JSON.stringify(ipv4)}`);
  const [a, b, c, d] = ipv4.split('.').map(Number) as [number, number, number, number];
  return `${TUNNEL_NET}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
}

export interface KeyPair { privateKey: string; publicKey: string }  // base64 of 32 bytes each, as `wg` takes them

// X25519 (RFC 7748) from 32 raw bytes: Node takes raw keys only inside DER.
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');

export function keyPairFromSecret(secret: Buffer): KeyPair {
  if (secret.length !== 32) throw new Error('a WireGuard private key is 32 bytes');
  const priv = Buffer.from(secret);
  // Clamped as WireGuard does, so that `wg` shows the same key back.
  priv[0]! &= 248; priv[31]! &= 127; priv[31]! |= 64;
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, priv]), format: 'der', type: 'pkcs8' });
  const spki = createPublicKey(key).export({ format: 'der', type: 'spki' });
  return { privateKey: priv.toString('base64'), publicKey: spki.subarray(spki.length - 32).toString('base64') };
}

export function nodeKeyPair(dataPathKey: Buffer, nodeId: string): KeyPair {
  return keyPairFromSecret(Buffer.from(hkdfSync('sha256', dataPathKey, 'shoal encrypted overlay', nodeId, 32)));
}

// The primary key of the view's set, or why there is none to use.
export function primaryKey(keys: ViewKey[] | undefined): Buffer | string {
  const k = (keys ?? []).find((x) => x.Primary);
  if (!k) return 'no data-path key in the network view yet';
  const raw = Buffer.from(typeof k.Key === 'string' ? k.Key : '', 'base64');
  if (raw.length !== NETWORK_KEY_BYTES) return `data-path key ${k.Tag} is not ${NETWORK_KEY_BYTES} bytes`;
  return raw;
}

export interface TunnelPeer { nodeId: string; publicKey: string; endpoint: string; allowedIp: string }

export interface DesiredTunnel {
  name: string;
  addr: string;              // this node's tunnel address (without the prefix length)
  keys?: KeyPair;            // absent until the view holds a primary key
  peers: TunnelPeer[];       // sorted by node ID
}

// The tunnel this node needs for its encrypted networks' remote nodes
// (node ID → data-path address).
export function desiredTunnel(nodeId: string, nodeAddr: string, remotes: Map<string, string>, keys: ViewKey[] | undefined, problems: string[]): DesiredTunnel {
  const key = primaryKey(keys);
  if (typeof key === 'string') problems.push(`encrypted networks: ${key}: no peers yet`);
  const peers: TunnelPeer[] = [];
  if (typeof key !== 'string') {
    for (const [id, addr] of [...remotes.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
      if (!isIPv4(addr)) { problems.push(`encrypted networks: node ${id} has a bad data-path address`); continue; }
      peers.push({ nodeId: id, publicKey: nodeKeyPair(key, id).publicKey, endpoint: `${addr}:${TUNNEL_PORT}`, allowedIp: `${tunnelAddr(addr)}/128` });
    }
  }
  return { name: tunnelName(nodeId), addr: tunnelAddr(nodeAddr), ...(typeof key === 'string' ? {} : { keys: nodeKeyPair(key, nodeId) }), peers };
}

// The tunnel's configuration as `wg syncconf` reads it (which changes only
// what differs: peers kept keep their sessions).
export function tunnelConfig(t: DesiredTunnel): string | undefined {
  if (!t.keys) return undefined;
  const lines = ['[Interface]', `PrivateKey = ${t.keys.privateKey}`, `ListenPort = ${TUNNEL_PORT}`];
  for (const p of t.peers) {
    lines.push('', '[Peer]', `PublicKey = ${p.publicKey}`, `Endpoint = ${p.endpoint}`, `AllowedIPs = ${p.allowedIp}`, `PersistentKeepalive = ${KEEPALIVE_S}`);
  }
  return `${lines.join('\n')}\n`;
}
