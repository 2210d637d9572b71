// A lab host's etcd counters, from its /metrics (served on its client URL,
// inside the host's network namespace, with the member's own certificate):
// how many writes a phase cost and how many bytes they carried, which no
// process's CPU figure shows (bench/scale.ts: writes and bytes per task).
import { DEFAULTS } from '../src/daemon/options';
import { exec } from './util';

export interface EtcdCounters {
  puts: number;       // keys written (each put of a txn counts)
  putBytes: number;   // their keys and values
  txns: number;       // write transactions (revisions)
  walBytes: number;   // this member's raft log written to disk
  sentBytes: number;  // to this member's clients: watch events and answers
}

const NAMES: Record<keyof EtcdCounters, string> = {
  puts: 'etcd_mvcc_put_total',
  putBytes: 'etcd_debugging_mvcc_total_put_size_in_bytes',
  txns: 'etcd_mvcc_txn_total',
  walBytes: 'etcd_disk_wal_write_bytes_total',
  sentBytes: 'etcd_network_client_grpc_sent_bytes_total',
};

export function parseEtcdCounters(text: string): EtcdCounters | undefined {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+) ([0-9.e+]+)$/.exec(line);
    if (m) values.set(m[1]!, Number(m[2]));
  }
  const out = {} as EtcdCounters;
  for (const [k, name] of Object.entries(NAMES) as Array<[keyof EtcdCounters, string]>) {
    const v = values.get(name);
    if (v === undefined || !Number.isFinite(v)) return undefined;
    out[k] = v;
  }
  return out;
}

// undefined when the member does not answer within 10 s (the figure is left out).
export async function readEtcdCounters(labDir: string, netns: string, host: string, clientUrl = DEFAULTS.etcdClientUrl): Promise<EtcdCounters | undefined> {
  const certs = `${labDir}/hosts/${host}/shoal/certificates`;
  const r = await exec('nsenter', [`--net=/var/run/netns/${netns}`, 'curl', '-sS', '--max-time', '10',
    '--cacert', `${certs}/etcd-ca.crt`, '--cert', `${certs}/etcd.crt`, '--key', `${certs}/etcd.key`, `${clientUrl}/metrics`], { timeoutMs: 12_000 }).catch(() => undefined);
  return r?.code === 0 ? parseEtcdCounters(r.stdout) : undefined;
}

export function counterDelta(a: EtcdCounters, b: EtcdCounters): EtcdCounters {
  return { puts: b.puts - a.puts, putBytes: b.putBytes - a.putBytes, txns: b.txns - a.txns, walBytes: b.walBytes - a.walBytes, sentBytes: b.sentBytes - a.sentBytes };
}
