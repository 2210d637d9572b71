// Throughput and latency through a service VIP and through the routing mesh,
// against the same connection made straight to a task, in one run. Shoal's
// `ip shoal` table does the balancing (agent/network/loadbalancer); Docker
// Swarm cannot be measured here: its VIP and mesh need IPVS, which this
// kernel lacks. Two settings (traffic on lab addresses only, nothing leaves them):
//
//   node dist/bench/mesh.js [--rounds 5] [--conns 200] [--mb 128] [--json FILE]
//     the load-balancer lab's namespaces (test/helpers/lb-netns.ts: shoal-lb-*,
//     the balancer alone on one node); paths, alternated within each round:
//       direct-bridge   client task -> task address          (the same bridge)
//       vip             client task -> VIP                   (DNAT + SNAT, routed by the node)
//       direct-routed   outside client -> task address       (routed by the node, no NAT)
//       mesh            outside client -> node address:port  (DNAT + SNAT)
//   node dist/bench/mesh.js --lab [same options]
//     a three-host Shoal lab (SHOAL_LAB_INDEX, default 14; bench/mesh-lab.ts):
//     the whole of Shoal, the overlay between hosts; paths in mesh-lab.ts.
//
// Per path and round: `--conns` sequential new connections, each connect +
// one answer (latency, ms), and one connection sending `--mb` MB (MB/s).
// Goals (issue 9): at least 90 % of direct throughput, added p99 under 1 ms.
import { parseArgs } from 'node:util';
import { silentLogger } from '../src/common/log';
import { LoadBalancer } from '../src/agent/network/loadbalancer/load-balancer';
import { CLIENT_ADDR, inNs, LbLab, lbLabView, must, NAME_PORT, NODE_A, NODE_ADDR, NS, SINK_PORT, taskAddr, tool, VIP } from '../test/helpers/lb-netns';
import { labMeshPaths } from './mesh-lab';
import { meshLines, summarize, type MeshSetting, type PathResult } from './mesh-report';
import { finishBench, installSignalCleanup, onCleanup, positiveOption, runBenchMain } from './util';

interface Options { rounds: number; conns: number; mb: number; lab: boolean; json?: string }

const LATENCY_BATCH = 25;

function options(): Options {
  const { values } = parseArgs({ options: { rounds: { type: 'string' }, conns: { type: 'string' }, mb: { type: 'string' }, lab: { type: 'boolean' }, json: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) { process.stdout.write('usage: node dist/bench/mesh.js [--lab] [--rounds 5] [--conns 200] [--mb 128] [--json FILE]\n'); process.exit(0); }
  return {
    rounds: Math.min(50, Math.round(positiveOption(values.rounds, 5, 'rounds'))),
    conns: Math.min(2000, Math.round(positiveOption(values.conns, 200, 'conns'))),
    mb: Math.min(2048, positiveOption(values.mb, 128, 'mb')),
    lab: values.lab ?? false,
    ...(values.json ? { json: values.json } : {}),
  };
}

// The load-balancer lab's namespaces with the balancer alone.
async function namespaceSetting(): Promise<MeshSetting> {
  const lab = new LbLab();
  onCleanup('lb lab namespaces', () => lab.down());
  await lab.up();
  const lb = new LoadBalancer({ nodeId: NODE_A, nodeAddr: NODE_ADDR, log: silentLogger, exec: (cmd, args, opts) => inNs(NS.node, cmd, args, opts) });
  onCleanup('load balancer table', () => lb.close());
  if (!(await lb.apply(lbLabView()))) throw new Error('the load balancer table was not applied');
  // The direct routed path needs what dockerd never allows: the outside client straight to a task.
  await must(NS.node, 'iptables', ['-w', '5', '-I', 'FORWARD', '1', '-i', 'eth0', '-d', taskAddr(0), '-j', 'ACCEPT']);
  const from = (ns: string) => <T>(args: string[], timeoutMs: number) => tool<T>(ns, args, timeoutMs);
  return {
    title: `client ${CLIENT_ADDR} / outside ${NODE_ADDR.replace(/\d+$/, '50')}`,
    paths: [
      { name: 'direct-bridge', run: from(NS.c), host: taskAddr(0), namePort: NAME_PORT, sinkPort: SINK_PORT },
      { name: 'vip', run: from(NS.c), host: VIP, namePort: NAME_PORT, sinkPort: SINK_PORT },
      { name: 'direct-routed', run: from(NS.ext), host: taskAddr(0), namePort: NAME_PORT, sinkPort: SINK_PORT },
      { name: 'mesh', run: from(NS.ext), host: NODE_ADDR, namePort: 30080, sinkPort: 30090 },
    ],
    pairs: [{ via: 'vip', direct: 'direct-bridge', goals: true }, { via: 'mesh', direct: 'direct-routed', goals: true }],
  };
}

async function main(): Promise<number> {
  const o = options();
  installSignalCleanup();
  const setting = o.lab ? await labMeshPaths() : await namespaceSetting();
  const bytes = Math.round(o.mb * 1024 * 1024);
  const results = new Map<string, PathResult>(setting.paths.map((p) => [p.name, { latencyMs: [], mbps: [] }]));
  for (let r = 0; r < o.rounds; r++) {
    // Latency in small batches, the paths taking turns, so that a burst of load elsewhere hits them alike.
    for (let done = 0; done < o.conns; done += LATENCY_BATCH) {
      const n = Math.min(LATENCY_BATCH, o.conns - done);
      for (const p of setting.paths) {
        results.get(p.name)!.latencyMs.push(...await p.run<number[]>(['latency', p.host, String(p.namePort), String(n)], 30_000 + n * 2_500));
      }
    }
    for (const p of setting.paths) {
      const t = await p.run<{ bytes: number; seconds: number }>(['throughput', p.host, String(p.sinkPort), String(bytes)], 90_000);
      results.get(p.name)!.mbps.push(t.bytes / 1024 / 1024 / t.seconds);
    }
    process.stderr.write(`[bench] round ${r + 1}/${o.rounds} done\n`);
  }
  const summary = summarize(results);
  const lines = [
    `load balancer${o.lab ? ' (three-host lab)' : ''}: ${o.rounds} rounds, ${o.conns} connections and ${o.mb} MB per path and round (${setting.title})`,
    ...meshLines(summary, setting.pairs),
  ];
  return finishBench(lines.join('\n'), o.json, { options: o, shoal: {}, ...({ summary, raw: Object.fromEntries(results) } as object) });
}

runBenchMain(main);
