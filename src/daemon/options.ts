import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { invalid } from '../common/errors';

export interface DaemonOptions {
  hosts: string[];          // where the API is served: unix:///path.sock or tcp://ip:port
  dataRoot: string;
  engine: string;           // the host's plain dockerd
  etcdBinary: string;
  etcdClientUrl: string;
  etcdPeerUrl: string;
  hostname?: string;        // node hostname override (lab hosts share one UTS namespace)
  // Defaults for swarm init/join (dockerd: --swarm-default-advertise-addr; Shoal also takes the others).
  listenAddr?: string;      // the node-to-node channel: IP[:PORT], default 0.0.0.0:2377
  advertiseAddr?: string;
  dataPathAddr?: string;
  logLevel: string;
  tls?: ApiTlsOptions;       // for tcp:// listeners (dockerd's --tls/--tlsverify)
  insecureTcp: boolean;     // tcp:// without TLS explicitly accepted
}

// dockerd's meanings: --tls serves HTTPS with --tlscert/--tlskey; --tlsverify
// (implies --tls) also requires client certificates signed by --tlscacert.
export interface ApiTlsOptions { verify: boolean; caCert: string; cert: string; key: string }

export const DEFAULTS = {
  host: 'unix:///run/shoal/shoal.sock',
  dataRoot: '/var/lib/shoal',
  engine: 'unix:///var/run/docker.sock',
  etcdBinary: '/usr/bin/etcd',
  // Not etcd's own 2379/2380, so a system etcd can run beside Shoal. https
  // only: etcd requires a client certificate from the swarm CA on both.
  etcdClientUrl: 'https://127.0.0.1:4379',
  etcdPeerUrl: 'https://127.0.0.1:4380',
};

export function parseDaemonOptions(argv: string[]): DaemonOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string', short: 'H', multiple: true },
      'data-root': { type: 'string' },
      engine: { type: 'string' },
      'etcd-binary': { type: 'string' },
      'etcd-client-url': { type: 'string' },
      'etcd-peer-url': { type: 'string' },
      hostname: { type: 'string' },
      'listen-addr': { type: 'string' },
      'advertise-addr': { type: 'string' },
      'swarm-default-advertise-addr': { type: 'string' },
      'data-path-addr': { type: 'string' },
      'log-level': { type: 'string' },
      tls: { type: 'boolean' },
      tlsverify: { type: 'boolean' },
      tlscacert: { type: 'string' },
      tlscert: { type: 'string' },
      tlskey: { type: 'string' },
      'insecure-tcp': { type: 'boolean' },
    },
    strict: true,
  });
  const hosts = values.host?.length ? values.host : [DEFAULTS.host];
  for (const h of hosts) {
    if (!/^unix:\/\/\/.+|^tcp:\/\/[^/]+:\d+$/.test(h)) throw invalid(`invalid -H ${h}: expected unix:///path.sock or tcp://ip:port`);
  }
  const etcdClientUrl = etcdUrl('--etcd-client-url', values['etcd-client-url'] ?? DEFAULTS.etcdClientUrl);
  const etcdPeerUrl = etcdUrl('--etcd-peer-url', values['etcd-peer-url'] ?? DEFAULTS.etcdPeerUrl);
  if (new URL(etcdClientUrl).host === new URL(etcdPeerUrl).host) throw invalid(`--etcd-client-url and --etcd-peer-url must differ: both are ${etcdClientUrl}`);
  const tls = apiTls(values);
  const insecureTcp = values['insecure-tcp'] ?? false;
  const plainTcp = hosts.filter((h) => h.startsWith('tcp://'));
  if (plainTcp.length && !tls && !insecureTcp) {
    throw invalid(`refusing to serve the Docker API on ${plainTcp.join(', ')} without TLS: whoever reaches it is root on this host. `
      + 'Use --tlsverify --tlscacert CA --tlscert CERT --tlskey KEY, or --insecure-tcp to accept the risk');
  }
  return {
    hosts,
    tls,
    insecureTcp,
    dataRoot: values['data-root'] ?? DEFAULTS.dataRoot,
    engine: values.engine ?? DEFAULTS.engine,
    etcdBinary: values['etcd-binary'] ?? DEFAULTS.etcdBinary,
    etcdClientUrl,
    etcdPeerUrl,
    hostname: values.hostname,
    listenAddr: values['listen-addr'],
    advertiseAddr: values['advertise-addr'] ?? values['swarm-default-advertise-addr'],
    dataPathAddr: values['data-path-addr'],
    logLevel: values['log-level'] ?? process.env.SHOAL_LOG_LEVEL ?? 'info',
  };
}

// etcd's URLs: https://HOST:PORT. Plain http is refused: etcd would then take
// any local process as a client.
function etcdUrl(flag: string, value: string): string {
  const m = /^(\w+):\/\/([^/]+):(\d+)\/?$/.exec(value);
  if (!m) throw invalid(`invalid ${flag} ${value}: expected https://HOST:PORT`);
  if (m[1] !== 'https') throw invalid(`invalid ${flag} ${value}: etcd is reached only over mutual TLS, use https://${m[2]}:${m[3]}`);
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw invalid(`invalid ${flag} ${value}: port out of range`);
  return `https://${m[2]}:${m[3]}`;
}

// Certificate paths default as dockerd's do: $DOCKER_CERT_PATH or ~/.docker.
function apiTls(values: { tls?: boolean; tlsverify?: boolean; tlscacert?: string; tlscert?: string; tlskey?: string }): ApiTlsOptions | undefined {
  if (!values.tls && !values.tlsverify) return undefined;
  const dir = process.env.DOCKER_CERT_PATH || join(homedir(), '.docker');
  return {
    verify: values.tlsverify ?? false,
    caCert: values.tlscacert ?? join(dir, 'ca.pem'),
    cert: values.tlscert ?? join(dir, 'cert.pem'),
    key: values.tlskey ?? join(dir, 'key.pem'),
  };
}
