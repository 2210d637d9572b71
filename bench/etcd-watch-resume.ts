// Does a watch resumed on a restarted etcd member lose events? The question
// behind the mirror divergences the fault test found after etcd kills (the
// answer was the store's own batch handling: README, "Lost watch events were
// the store's own"). Three bare members (bench/bare-etcd.ts: Shoal's binary,
// flags and mutual TLS); a writer on member 2 puts two keys per transaction
// and deletes old pairs; a mirror of keys on member 1 follows one watch
// through EtcdBackend (as the store does) and resumes it from its own
// revision when it breaks. Each round kills member 1 (SIGKILL; its
// supervisor restarts it), lets the backlog come, and compares the mirror,
// as it was at its revision, with etcd read at that revision.
//
//   node dist/bench/etcd-watch-resume.js [--kills 15]
//
// Ends with "N kills, M with a mirror that differs from etcd"; exit 1 when M > 0.
import { parseArgs } from 'node:util';
import { ETCD_CERT_NAME } from '../src/manager/ca/ca';
import { EtcdBackend } from '../src/store/etcd-backend';
import { etcdClientOptions } from '../src/store/etcd-process';
import type { Op, WatchEvent, WatchHandle } from '../src/store/backend';
import { startBareEtcd } from './bare-etcd';
import { installSignalCleanup, onCleanup, positiveOption, runBenchMain, runCleanup, sleep } from './util';

const PREFIX = '/t/';
const LIVE_PAIRS = 20;          // older pairs than this are deleted
const SETTLE_MS = 3_000;        // after a member is back, before the comparison
const say = (s: string) => process.stderr.write(`[etcd-watch-resume] ${s}\n`);

// Keys under PREFIX with their mod revisions, fed by one watch of the whole
// key space; revisions must follow one by one, as the store checks them.
class KeyMirror {
  readonly keys = new Map<string, number>();
  revision = 0;
  gaps = 0;

  apply(evs: WatchEvent[]): void {
    const fresh = evs.filter((e) => e.kv.modRevision > this.revision);
    let expect = this.revision;
    for (const e of fresh) {
      if (e.kv.modRevision !== expect && e.kv.modRevision !== expect + 1) this.gaps++;
      expect = e.kv.modRevision;
      if (!e.kv.key.startsWith(PREFIX)) continue;
      if (e.type === 'delete') this.keys.delete(e.kv.key); else this.keys.set(e.kv.key, e.kv.modRevision);
    }
    this.revision = expect;
  }
}

async function main(): Promise<number> {
  installSignalCleanup();
  const { values } = parseArgs({ options: { kills: { type: 'string' } } });
  const kills = positiveOption(values.kills, 15, 'kills');
  const etcd = await startBareEtcd(3, '/usr/bin/etcd', 'resume');
  onCleanup('etcd', () => etcd.stop());
  const backend = (i: number): EtcdBackend => new EtcdBackend({ ...etcdClientOptions(etcd.members[i]!.clientUrl, etcd.members[i]!.tls), grpcOptions: { 'grpc.ssl_target_name_override': ETCD_CERT_NAME } });
  const writer = backend(1);
  const watched = backend(0);
  onCleanup('clients', async () => { await writer.close(); await watched.close(); });

  let writing = true;
  let written = 0;
  const writes = (async () => {
    const live: number[] = [];
    for (let n = 1; writing; n++) {
      const ops: Op[] = [{ put: `${PREFIX}k${n}`, value: 'x'.repeat(200) }, { put: `${PREFIX}b${n}`, value: 'y' }];
      const old = live.length > LIVE_PAIRS ? live.shift() : undefined;
      if (old !== undefined) ops.push({ del: `${PREFIX}k${old}` }, { del: `${PREFIX}b${old}` });
      try { await writer.txn([], ops); live.push(n); written++; } catch { await sleep(20); }
      await sleep(5);
    }
  })();

  const mirror = new KeyMirror();
  const first = await watched.range(PREFIX);
  for (const kv of first.kvs) mirror.keys.set(kv.key, kv.modRevision);
  mirror.revision = first.revision;
  let handle: WatchHandle | undefined;
  let resuming = false;
  const resume = async (): Promise<void> => {
    if (resuming) return;
    resuming = true;
    // Bounded by the member's restart (30 s in bare-etcd's kill) and the calls' own bounds.
    for (let attempt = 0; attempt < 600; attempt++) {
      try {
        handle = await watched.watch('', mirror.revision + 1, { onEvents: (evs) => mirror.apply(evs), onLost: () => { void resume(); } });
        break;
      } catch { await sleep(100); }
    }
    resuming = false;
  };
  await resume();

  let differing = 0;
  for (let k = 1; k <= kills; k++) {
    await sleep(1_500 + Math.random() * 2_000);
    await etcd.kill(0);
    await sleep(SETTLE_MS);
    const at = mirror.revision;
    const mine = new Map(mirror.keys); // as at `at`: the mirror moves on while etcd answers
    const theirs = new Map((await watched.range(PREFIX, { revision: at, keysOnly: true })).kvs.map((kv) => [kv.key, kv.modRevision]));
    const diff: string[] = [];
    for (const [key, rev] of theirs) if (mine.get(key) !== rev) diff.push(`${key}: ${mine.get(key) ?? 'none'} in the mirror, ${rev} in etcd`);
    for (const [key, rev] of mine) if (!theirs.has(key)) diff.push(`${key}: ${rev} in the mirror, none in etcd`);
    say(`kill ${k}: at revision ${at}, ${theirs.size} keys, ${diff.length ? `${diff.length} differ: ${diff.slice(0, 4).join('; ')}` : 'the mirror agrees'}`);
    if (diff.length) differing++;
  }
  writing = false;
  await writes;
  await handle?.close();
  process.stdout.write(`${kills} kills, ${differing} with a mirror that differs from etcd (${mirror.gaps} gaps seen, ${written} transactions written)\n`);
  return differing ? 1 : 0;
}

if (require.main === module) runBenchMain(async () => { const code = await main(); await runCleanup(); return code; });
