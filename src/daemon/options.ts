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
  logLevel: string;
}

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
      'log-level': { type: 'string' },
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
  return {
    hosts,
    dataRoot: values['data-root'] ?? DEFAULTS.dataRoot,
    engine: values.engine ?? DEFAULTS.engine,
    etcdBinary: values['etcd-binary'] ?? DEFAULTS.etcdBinary,
    etcdClientUrl,
    etcdPeerUrl,
    hostname: values.hostname,
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
