import { EtcdBackend } from '../../src/store/etcd-backend';
import type { KeyValue } from '../../src/store/backend';
import { etcdClientOptions, type EtcdTls } from '../../src/store/etcd-process';

// A test daemon: its etcd's client URL and the certificates etcd demands (mutual TLS).
export interface EtcdReach { etcdClientUrl: string; etcdTlsFiles(): EtcdTls }

// Direct access to a test daemon's etcd, bypassing Shoal: the one place that knows how to connect.
export function etcdClient(h: EtcdReach): EtcdBackend {
  return new EtcdBackend(etcdClientOptions(h.etcdClientUrl, h.etcdTlsFiles()));
}

// Every key under `prefix` with its value and revisions, read in pages at one revision.
export async function etcdDump(h: EtcdReach, prefix = '/shoal/v1/'): Promise<{ kvs: KeyValue[]; revision: number }> {
  const c = etcdClient(h);
  try {
    const kvs: KeyValue[] = [];
    let revision = 0;
    let fromKey: string | undefined;
    for (;;) {
      const page = await c.range(prefix, { revision, limit: 1000, fromKey });
      if (!revision) revision = page.revision;
      kvs.push(...page.kvs);
      if (!page.more || !page.kvs.length) return { kvs, revision };
      fromKey = page.kvs[page.kvs.length - 1]!.key + '\0';
    }
  } finally {
    await c.close();
  }
}

// Whether etcd answers a read now (bounded by the client's call deadline).
export async function etcdAnswers(h: EtcdReach): Promise<boolean> {
  const c = etcdClient(h);
  try { await c.range('/shoal/v1/health-probe', { limit: 1 }); return true; } catch { return false; } finally { await c.close(); }
}
