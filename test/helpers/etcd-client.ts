import type { IOptions } from 'etcd3';
import { EtcdBackend } from '../../src/store/etcd-backend';
import type { KeyValue } from '../../src/store/backend';

// Direct access to a test daemon's etcd, bypassing Shoal. The one place that
// knows how to connect (plain URL today; TLS options go here if etcd needs them).
export function etcdClientOptions(h: { etcdClientUrl: string }): IOptions {
  return { hosts: h.etcdClientUrl };
}

export function etcdClient(h: { etcdClientUrl: string }): EtcdBackend {
  return new EtcdBackend(etcdClientOptions(h));
}

// Every key under `prefix` with its value and revisions, read in pages at one revision.
export async function etcdDump(h: { etcdClientUrl: string }, prefix = '/shoal/v1/'): Promise<{ kvs: KeyValue[]; revision: number }> {
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
export async function etcdAnswers(h: { etcdClientUrl: string }): Promise<boolean> {
  const c = etcdClient(h);
  try { await c.range('/shoal/v1/health-probe', { limit: 1 }); return true; } catch { return false; } finally { await c.close(); }
}
