import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { invalid } from '../common/errors';

// The address other nodes will use for this one: an IP, an IP:port, or an
// interface name, as `docker swarm init --advertise-addr` takes; without one,
// the first non-loopback IPv4 address (Docker refuses when there are several;
// the first is a friendlier default on one host and namespaced lab hosts).
export function resolveAdvertiseAddr(given: string | undefined, defaultPort = 2377): { ip: string; port: number } {
  const ifaces = networkInterfaces();
  if (given) {
    let host = given;
    let port = defaultPort;
    const m = /^(.*):(\d+)$/.exec(given);
    if (m && !isIP(given)) { host = m[1]!; port = Number(m[2]); }
    if (isIP(host)) return { ip: host, port };
    const iface = ifaces[host];
    const v4 = iface?.find((a) => a.family === 'IPv4');
    if (v4) return { ip: v4.address, port };
    throw invalid(`advertise address must be a non-zero IP address or network interface (with optional port number)`);
  }
  for (const list of Object.values(ifaces)) {
    const a = list?.find((x) => x.family === 'IPv4' && !x.internal);
    if (a) return { ip: a.address, port: defaultPort };
  }
  return { ip: '127.0.0.1', port: defaultPort };
}
