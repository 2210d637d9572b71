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
  // Not etcd's own 2379/2380, so a system etcd can run beside Shoal.
  etcdClientUrl: 'http://127.0.0.1:4379',
  etcdPeerUrl: 'http://127.0.0.1:4380',
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
  return {
    hosts,
    dataRoot: values['data-root'] ?? DEFAULTS.dataRoot,
    engine: values.engine ?? DEFAULTS.engine,
    etcdBinary: values['etcd-binary'] ?? DEFAULTS.etcdBinary,
    etcdClientUrl: values['etcd-client-url'] ?? DEFAULTS.etcdClientUrl,
    etcdPeerUrl: values['etcd-peer-url'] ?? DEFAULTS.etcdPeerUrl,
    hostname: values.hostname,
    logLevel: values['log-level'] ?? process.env.SHOAL_LOG_LEVEL ?? 'info',
  };
}
