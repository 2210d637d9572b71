import { basename } from 'node:path';
import { cmdlineArgs } from '../src/common/proc';
import { run } from '../src/common/run';
import { rssBytes, rssSplit, type RssSplit } from './util';

const MB = 1024 * 1024;

export interface HostMemory { daemon: number; etcd: number; engine: number; daemonSplit?: RssSplit; etcdSplit?: RssSplit }

// One lab host's RSS now (MB): Shoal's daemon, its etcd, and the engine
// (dockerd + containerd), found among the processes of the host's namespace.
export async function labHostMemory(labIndex: string, name: string): Promise<HostMemory> {
  const r = await run('ip', ['netns', 'pids', `shoal-lab${labIndex}-${name}`]);
  const m: HostMemory = { daemon: 0, etcd: 0, engine: 0 };
  for (const pid of r.stdout.split('\n').filter((l) => /^\d+$/.test(l)).map(Number)) {
    const args = cmdlineArgs(pid);
    const prog = basename(args[0] ?? '');
    if (prog === 'dockerd' || prog === 'containerd') m.engine += rssBytes(pid) / MB;
    else if (prog === 'etcd') { m.etcd += rssBytes(pid) / MB; m.etcdSplit = rssSplit(pid); }
    else if (args.includes('daemon') && args.some((a) => a.endsWith('/shoal.sock'))) { m.daemon += rssBytes(pid) / MB; m.daemonSplit = rssSplit(pid); }
  }
  return m;
}

// The pid of a lab host's Shoal daemon, if it runs.
export async function labDaemonPid(labIndex: string, name: string): Promise<number | undefined> {
  const r = await run('ip', ['netns', 'pids', `shoal-lab${labIndex}-${name}`]);
  return r.stdout.split('\n').filter((l) => /^\d+$/.test(l)).map(Number)
    .find((pid) => { const args = cmdlineArgs(pid); return args.includes('daemon') && args.some((a) => a.endsWith('/shoal.sock')); });
}
