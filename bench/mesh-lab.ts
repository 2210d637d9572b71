// bench/mesh.ts --lab: the mesh bench on a three-host Shoal lab (one manager,
// two workers; SHOAL_LAB_INDEX, default 14), the whole of Shoal in the path.
// A service `sink` (one task, on host1) on an overlay `benchnet`, publishing
// 30080 -> 8080 and 30090 -> 9000; a service `client` (one task, on host2) on
// benchnet. Both run busybox `sleep`; the namespace tool (lb-ns-tool.ts)
// serves and measures inside their containers' network namespaces (entered
// through the lab host's mount namespace, where dockerd's pids and /proc are).
// Paths, every one crossing from host2 to the task on host1:
//   direct    client task (host2) -> the sink task's benchnet address (overlay, no NAT)
//   vip       client task (host2) -> sink's VIP on benchnet (DNAT + SNAT on host2, then the overlay)
//   mesh      host2's own namespace -> host2's address:30080 (the routing mesh: DNAT + SNAT, ingress overlay)
//   encrypted client task (host2) -> the sink task's address on `sealednet`, an
//             overlay made with --opt encrypted (VXLAN inside WireGuard, no NAT)
// Pairs: vip and mesh each against direct (issue 9's goals); encrypted against direct (its cost).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../src/common/run';
import { runDocker, unixRequest } from '../test/helpers/daemon';
import { parseHostLines, runLab, type LabHost } from '../test/helpers/lab';
import { NAME_PORT, SINK_PORT, TOOL } from '../test/helpers/lb-netns';
import type { MeshSetting } from './mesh-report';
import { onCleanup, until } from './util';

const INDEX = process.env.SHOAL_LAB_INDEX ?? '14';
const IMG = 'shoal-test/busybox:1';
const MESH_PORT = 30080;
const MESH_SINK_PORT = 30090;
const WAIT_MS = 120_000;
const say = (s: string) => process.stderr.write(`[mesh-lab] ${s}\n`);

export async function labMeshPaths(): Promise<MeshSetting> {
  if (process.getuid?.() !== 0) throw new Error('the lab bench needs root');
  const dir = join(mkdtempSync('/tmp/shoal-bench-mesh-'), 'lab');
  const lab = (args: string[]) => runLab(INDEX, [...args, '--dir', dir], 300_000);
  const servers: ChildProcess[] = [];
  onCleanup('mesh lab', async () => {
    for (const s of servers) s.kill('SIGKILL');
    const r = await lab(['down']);
    if (r.code !== 0) say(`lab down: ${r.stderr.trim()}`);
  });
  say(`lab up --hosts 3 --managers 1 --workers 2 (index ${INDEX})`);
  const up = await lab(['up', '--hosts', '3', '--managers', '1', '--workers', '2']);
  if (up.code !== 0) throw new Error(`lab up: ${up.stderr.trim()}`);
  const hosts = parseHostLines(up.stdout);
  const host = (n: string): LabHost => hosts.find((h) => h.name === n)!;
  const docker = async (args: string[]) => {
    const r = await runDocker(host('host1').dockerHost, args, { timeoutMs: WAIT_MS });
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout.trim();
  };
  const netId = await docker(['network', 'create', '-d', 'overlay', 'benchnet']);
  await docker(['network', 'create', '-d', 'overlay', '--opt', 'encrypted', 'sealednet']);
  await docker(['service', 'create', '-d', '--name', 'sink', '--network', 'benchnet', '--network', 'sealednet', '--constraint', 'node.hostname==host1',
    '-p', `${MESH_PORT}:${NAME_PORT}`, '-p', `${MESH_SINK_PORT}:${SINK_PORT}`, IMG, 'sleep', '100000']);
  await docker(['service', 'create', '-d', '--name', 'client', '--network', 'benchnet', '--network', 'sealednet', '--constraint', 'node.hostname==host2', IMG, 'sleep', '100000']);

  const initPids = new Map((JSON.parse(readFileSync(join(dir, 'lab.json'), 'utf8')) as { hosts: Array<{ name: string; initPid: number }> }).hosts.map((h) => [h.name, h.initPid]));
  // The running container of `service` on host `name`: its pid as the host's dockerd sees it.
  const containerPid = (name: string, service: string) => until(`a running ${service} container on ${name}`, WAIT_MS, async () => {
    const sock = join(dir, 'hosts', name, 'docker.sock');
    const list = (await unixRequest(sock, 'GET', `/containers/json?filters=${encodeURIComponent(JSON.stringify({ label: [`com.docker.swarm.service.name=${service}`] }))}`)).json as Array<{ Id: string }>;
    if (!list[0]) return undefined;
    const c = (await unixRequest(sock, 'GET', `/containers/${list[0].Id}/json`)).json as { State: { Pid: number } };
    return c.State.Pid > 0 ? c.State.Pid : undefined;
  });
  const inContainer = (name: string, pid: number) => ['nsenter', '-t', String(initPids.get(name)), '-m', '--', 'nsenter', '-t', String(pid), '-n', '--'];
  const sinkPid = await containerPid('host1', 'sink');
  const clientPid = await containerPid('host2', 'client');

  const [cmd, ...args] = [...inContainer('host1', sinkPid), process.execPath, TOOL, 'serve', 'sink', String(NAME_PORT), String(SINK_PORT)];
  const server = spawn(cmd!, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  servers.push(server);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the sink server: not ready within 20 s')), 20_000);
    server.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('ready')) { clearTimeout(timer); resolve(); } });
    server.on('exit', (code) => { clearTimeout(timer); reject(new Error(`the sink server exited (${code})`)); });
  });

  const svc = JSON.parse(await docker(['service', 'inspect', 'sink']))[0] as { Endpoint: { VirtualIPs: Array<{ NetworkID: string; Addr: string }> } };
  const vip = svc.Endpoint.VirtualIPs.find((v) => v.NetworkID === netId)?.Addr.split('/')[0];
  const taskId = await docker(['service', 'ps', '-q', '--filter', 'desired-state=running', 'sink']);
  const addrOn = async (network: string) => (await docker(['inspect', '--format', `{{range .NetworksAttachments}}{{if eq .Network.Spec.Name "${network}"}}{{range .Addresses}}{{.}}{{end}}{{end}}{{end}}`, taskId])).split('/')[0];
  const taskAddr = await addrOn('benchnet');
  const sealedAddr = await addrOn('sealednet');
  if (!vip || !taskAddr || !sealedAddr) throw new Error(`no VIP (${vip}) or task address (${taskAddr}, ${sealedAddr}) of sink on benchnet and sealednet`);

  const tool = (prefix: string[]) => async <T>(toolArgs: string[], timeoutMs: number): Promise<T> => {
    const [c, ...a] = [...prefix, process.execPath, TOOL, ...toolArgs];
    const r = await run(c!, a, { timeoutMs });
    if (r.code !== 0) throw new Error(`${toolArgs.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as T;
  };
  const fromClient = tool(inContainer('host2', clientPid));
  const fromHost2 = tool(['nsenter', `--net=/var/run/netns/shoal-lab${INDEX}-host2`, '--']);
  // Every path answers before the clock starts (the mesh's rules reach host2 a moment after the task runs).
  for (const [what, f, h, p] of [['direct', fromClient, taskAddr, NAME_PORT], ['vip', fromClient, vip, NAME_PORT], ['mesh', fromHost2, host('host2').address, MESH_PORT], ['encrypted', fromClient, sealedAddr, NAME_PORT]] as const) {
    await until(`${what} answering`, WAIT_MS, async () => (await f<string[]>(['probe', 'tcp', h, String(p), '1'], 10_000))[0]?.startsWith('sink'));
  }
  say(`sink task ${taskAddr} on host1, VIP ${vip}, mesh ${host('host2').address}:${MESH_PORT}; client on host2`);
  return {
    title: `client task and host2's namespace -> the sink task on host1 (task ${taskAddr}, VIP ${vip})`,
    paths: [
      { name: 'direct', run: fromClient, host: taskAddr, namePort: NAME_PORT, sinkPort: SINK_PORT },
      { name: 'vip', run: fromClient, host: vip, namePort: NAME_PORT, sinkPort: SINK_PORT },
      { name: 'mesh', run: fromHost2, host: host('host2').address, namePort: MESH_PORT, sinkPort: MESH_SINK_PORT },
      { name: 'encrypted', run: fromClient, host: sealedAddr, namePort: NAME_PORT, sinkPort: SINK_PORT },
    ],
    pairs: [{ via: 'vip', direct: 'direct', goals: true }, { via: 'mesh', direct: 'direct', goals: true }, { via: 'encrypted', direct: 'direct', goals: false }],
  };
}
