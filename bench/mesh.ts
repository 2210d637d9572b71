// Throughput and latency through a service VIP and through the routing mesh,
// against the same connection made straight to a task, in one run on the
// load-balancer lab's namespaces (test/helpers/lb-netns.ts: shoal-lb-*, lab
// addresses only, nothing leaves them). Shoal's `ip shoal` table does the
// balancing (agent/network/loadbalancer); Docker Swarm cannot be measured
// here: its VIP and mesh need IPVS, which this kernel lacks.
//
//   node dist/bench/mesh.js [--rounds 5] [--conns 200] [--mb 128] [--json FILE]
//
// Paths, alternated within each round so that noise hits them alike:
//   direct-bridge   client task -> task address          (the same bridge)
//   vip             client task -> VIP                   (DNAT + SNAT, routed by the node)
//   direct-routed   outside client -> task address       (routed by the node, no NAT)
//   mesh            outside client -> node address:port  (DNAT + SNAT)
// Per path and round: `--conns` sequential new connections, each connect +
// one answer (latency, ms), and one connection sending `--mb` MB (MB/s).
// Goals (issue 9): at least 90 % of direct throughput, added p99 under 1 ms.
import { parseArgs } from 'node:util';
import { silentLogger } from '../src/common/log';
import { LoadBalancer } from '../src/agent/network/loadbalancer/load-balancer';
import { CLIENT_ADDR, inNs, LbLab, lbLabView, must, NAME_PORT, NODE_A, NODE_ADDR, NS, SINK_PORT, taskAddr, tool, VIP } from '../test/helpers/lb-netns';
import { finishBench, installSignalCleanup, median, onCleanup, positiveOption, runBenchMain } from './util';

interface Options { rounds: number; conns: number; mb: number; json?: string }
interface Path { name: string; from: string; host: string; namePort: number; sinkPort: number }
interface PathResult { latencyMs: number[]; mbps: number[] }

const PATHS: Path[] = [
  { name: 'direct-bridge', from: NS.c, host: taskAddr(0), namePort: NAME_PORT, sinkPort: SINK_PORT },
  { name: 'vip', from: NS.c, host: VIP, namePort: NAME_PORT, sinkPort: SINK_PORT },
  { name: 'direct-routed', from: NS.ext, host: taskAddr(0), namePort: NAME_PORT, sinkPort: SINK_PORT },
  { name: 'mesh', from: NS.ext, host: NODE_ADDR, namePort: 30080, sinkPort: 30090 },
];
const LATENCY_BATCH = 25;
const PAIRS: Array<[string, string]> = [['vip', 'direct-bridge'], ['mesh', 'direct-routed']];

function options(): Options {
  const { values } = parseArgs({ options: { rounds: { type: 'string' }, conns: { type: 'string' }, mb: { type: 'string' }, json: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) { process.stdout.write('usage: node dist/bench/mesh.js [--rounds 5] [--conns 200] [--mb 128] [--json FILE]\n'); process.exit(0); }
  return {
    rounds: Math.round(positiveOption(values.rounds, 5, 'rounds')),
    conns: Math.min(2000, Math.round(positiveOption(values.conns, 200, 'conns'))),
    mb: Math.min(2048, positiveOption(values.mb, 128, 'mb')),
    ...(values.json ? { json: values.json } : {}),
  };
}

function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

async function main(): Promise<number> {
  const o = options();
  installSignalCleanup();
  const lab = new LbLab();
  onCleanup('lb lab namespaces', () => lab.down());
  await lab.up();
  const lb = new LoadBalancer({ nodeId: NODE_A, nodeAddr: NODE_ADDR, log: silentLogger, exec: (cmd, args, opts) => inNs(NS.node, cmd, args, opts) });
  onCleanup('load balancer table', () => lb.close());
  if (!(await lb.apply(lbLabView()))) throw new Error('the load balancer table was not applied');
  // The direct routed path needs what dockerd never allows: the outside client straight to a task.
  await must(NS.node, 'iptables', ['-w', '5', '-I', 'FORWARD', '1', '-i', 'eth0', '-d', taskAddr(0), '-j', 'ACCEPT']);

  const bytes = Math.round(o.mb * 1024 * 1024);
  const results = new Map<string, PathResult>(PATHS.map((p) => [p.name, { latencyMs: [], mbps: [] }]));
  for (let r = 0; r < o.rounds; r++) {
    // Latency in small batches, the paths taking turns, so that a burst of load elsewhere hits them alike.
    for (let done = 0; done < o.conns; done += LATENCY_BATCH) {
      const n = Math.min(LATENCY_BATCH, o.conns - done);
      for (const p of PATHS) {
        results.get(p.name)!.latencyMs.push(...await tool<number[]>(p.from, ['latency', p.host, String(p.namePort), String(n)], 30_000 + n * 2_500));
      }
    }
    for (const p of PATHS) {
      const t = await tool<{ bytes: number; seconds: number }>(p.from, ['throughput', p.host, String(p.sinkPort), String(bytes)], 90_000);
      results.get(p.name)!.mbps.push(t.bytes / 1024 / 1024 / t.seconds);
    }
    process.stderr.write(`[bench] round ${r + 1}/${o.rounds} done\n`);
  }

  const summary = Object.fromEntries([...results].map(([name, r]) => [name, {
    mbpsMedian: median(r.mbps), p50Ms: percentile(r.latencyMs, 50), p99Ms: percentile(r.latencyMs, 99), samples: r.latencyMs.length,
  }]));
  const lines = [
    `load balancer: ${o.rounds} rounds, ${o.conns} connections and ${o.mb} MB per path and round (client ${CLIENT_ADDR} / outside ${NODE_ADDR.replace(/\d+$/, '50')})`,
    'path            MB/s (median)   p50 ms   p99 ms',
    ...Object.entries(summary).map(([n, s]) => `${n.padEnd(15)} ${s.mbpsMedian.toFixed(0).padStart(13)}   ${s.p50Ms.toFixed(3).padStart(6)}   ${s.p99Ms.toFixed(3).padStart(6)}`),
    ...PAIRS.map(([via, direct]) => {
      const a = summary[via]!;
      const d = summary[direct]!;
      return `${via} vs ${direct}: throughput ${(100 * a.mbpsMedian / d.mbpsMedian).toFixed(1)} % (goal >= 90 %), added p99 ${(a.p99Ms - d.p99Ms).toFixed(3)} ms (goal < 1 ms), added p50 ${(a.p50Ms - d.p50Ms).toFixed(3)} ms`;
    }),
  ];
  return finishBench(lines.join('\n'), o.json, { options: o, shoal: {}, ...({ summary, raw: Object.fromEntries(results) } as object) });
}

runBenchMain(main);
