// The seeds' stacks end to end on a three-host Shoal lab (one manager, two
// workers, as seed 003's node01..03), typed with the real docker CLI as the
// seeds type them (test/helpers/seed-stacks.ts says what differs: image names
// and host paths only):
//   - seed 003 registry.yml: the registry on the labelled node, `docker push
//     127.0.0.1:5000/app:…` from a host that does not run it (the routing mesh),
//     a third host pulls it back;
//   - seed 003 app.yml (image from that registry) behind haproxy: the published
//     port answers on every host, a redeploy of a changed file rolls the
//     servers over and the answers change;
//   - seed 004's Portainer stack: the global agent on every host, `tasks.agent`
//     one address per host from inside a task;
//   - `docker stack rm` of each leaves nothing on any host (containers, swarm
//     and engine networks, devices, nftables rules of its VIPs and ports).
// Lab index 14 unless SHOAL_LAB_INDEX says otherwise.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../../src/common/run';
import { engineNetworkName } from '../../../src/protocol/network-view';
import { unixRequest, waitFor, type DockerResult } from '../../helpers/daemon';
import { LabSession, parseHostLines, runLab, type LabHost } from '../../helpers/lab';
import { APP_PORT, appImage, appYml, HAPROXY_CFG, PORTAINER_PORTS, portainerYml, REGISTRY_PORT, registryYml } from '../../helpers/seed-stacks';
import { ensureStackImages, loadImages, STACK_IMAGES, WEB_VERSIONS } from '../../helpers/stack-images';

const INDEX = process.env.SHOAL_LAB_INDEX ?? '14';
const CLI_MS = 120_000;
const CONVERGE_MS = 120_000;
const NAMESPACE_LABEL = 'com.docker.stack.namespace';
const q = (o: unknown) => encodeURIComponent(JSON.stringify(o));

interface StackTrace { serviceIds: string[]; vips: string[]; ports: number[]; networkIds: string[] }

describe('the seeds\' stacks on a three-host lab', { concurrency: 1 }, () => {
  const dir = join(mkdtempSync('/tmp/shoal-stacks-lab-it-'), 'lab');
  const files = join(dir, '..', 'files');
  const session = new LabSession(INDEX, dir, CLI_MS);
  let ingressId = '';
  const traces = new Map<string, StackTrace>();
  const host = (name: string): LabHost => session.host(name);
  const engineSocket = (name: string) => join(dir, 'hosts', name, 'docker.sock');
  const netns = (name: string) => `/var/run/netns/shoal-lab${INDEX}-${name}`;
  const lab = (args: string[]): Promise<string> => session.lab(args);
  const d = (name: string, args: string[]): Promise<DockerResult> => session.docker(name, args);
  const ok = async (name: string, args: string[]): Promise<string> => {
    const r = await d(name, args);
    assert.equal(r.code, 0, `docker ${args.join(' ')} on ${name}: ${r.stderr}${r.stdout}`);
    return r.stdout.trim();
  };
  // busybox wget inside a host's network namespace (its loopback, its routing mesh).
  const hostGet = (name: string, url: string) => run('nsenter', [`--net=${netns(name)}`, 'busybox', 'timeout', '5', 'busybox', 'wget', '-q', '-O-', url], { timeoutMs: 15_000 });
  const inNs = (name: string, cmd: string, args: string[]) => run('nsenter', [`--net=${netns(name)}`, cmd, ...args], { timeoutMs: 15_000 });
  const engine = async (name: string, path: string): Promise<any> => {
    const r = await unixRequest(engineSocket(name), 'GET', path, undefined, { timeoutMs: 15_000 });
    assert.equal(r.status, 200, `${path} on ${name}'s dockerd: ${r.text}`);
    return r.json;
  };
  // Running tasks of a service: node hostname and task ID.
  const runningTasks = async (service: string): Promise<Array<{ node: string; id: string; image: string }>> =>
    (await ok('host1', ['service', 'ps', '--no-trunc', '--filter', 'desired-state=running', '--format', '{{.ID}} {{.Node}} {{.Image}} {{.CurrentState}}', service]))
      .split('\n').filter((l) => / Running/.test(l)).map((l) => { const [id, node, image] = l.split(' '); return { id: id!, node: node!, image: image! }; });
  const waitRunning = (service: string, n: number, image?: string) =>
    waitFor(`${n} running tasks of ${service}${image ? ` on ${image}` : ''}`, async () => {
      const t = await runningTasks(service);
      return t.length === n && (!image || t.every((x) => x.image.startsWith(image))) ? t : undefined;
    }, CONVERGE_MS, 500);
  const inTask = async (name: string, service: string, sh: string): Promise<DockerResult> => {
    const id = await waitFor(`a running ${service} container on ${name}`, async () => (await ok(name, ['ps', '-q', '--filter', `label=com.docker.swarm.service.name=${service}`])).split('\n')[0], CONVERGE_MS, 500);
    return d(name, ['exec', id, 'sh', '-c', sh]);
  };
  const deploy = async (file: string, ns: string): Promise<string> => ok('host1', ['stack', 'deploy', '-c', file, ns]);

  // What a stack owns that `stack rm` must take away everywhere: noted while it runs.
  const note = async (ns: string): Promise<StackTrace> => {
    const services = JSON.parse((await unixRequest(host('host1').dockerHost.replace(/^unix:\/\//, ''), 'GET', `/v1.41/services?filters=${q({ label: { [`${NAMESPACE_LABEL}=${ns}`]: true } })}`)).text) as any[];
    const networks = JSON.parse((await unixRequest(host('host1').dockerHost.replace(/^unix:\/\//, ''), 'GET', `/v1.41/networks?filters=${q({ label: { [`${NAMESPACE_LABEL}=${ns}`]: true } })}`)).text) as any[];
    const t: StackTrace = {
      serviceIds: services.map((s) => s.ID),
      vips: services.flatMap((s) => (s.Endpoint?.VirtualIPs ?? []).map((v: { Addr: string }) => v.Addr.split('/')[0]!)),
      ports: services.flatMap((s) => (s.Endpoint?.Ports ?? []).map((p: { PublishedPort: number }) => p.PublishedPort)),
      networkIds: networks.map((n) => n.Id),
    };
    assert.ok(t.serviceIds.length && t.vips.length, `stack ${ns}: ${JSON.stringify(t)}`);
    traces.set(ns, t);
    return t;
  };

  // Nothing of the stack left on `name`: its containers, engine networks and devices, nft elements.
  const leftovers = async (name: string, t: StackTrace): Promise<string[]> => {
    const left: string[] = [];
    for (const id of t.serviceIds) {
      const cs = await engine(name, `/containers/json?all=1&filters=${q({ label: [`com.docker.swarm.service.id=${id}`] })}`) as unknown[];
      if (cs.length) left.push(`${cs.length} containers of service ${id}`);
    }
    const ours = new Set(t.networkIds.map(engineNetworkName));
    const nets = (await engine(name, '/networks') as Array<{ Name: string }>).map((n) => n.Name).filter((n) => ours.has(n));
    if (nets.length) left.push(`engine networks ${nets.join(' ')}`);
    const links = (await inNs(name, 'ip', ['-o', 'link', 'show'])).stdout;
    for (const id of t.networkIds) for (const dev of [`sb-${id.slice(0, 12)}`, `sv-${id.slice(0, 12)}`]) if (links.includes(`${dev}:`) || links.includes(`${dev}@`)) left.push(`device ${dev}`);
    const nft = await inNs(name, 'nft', ['list', 'table', 'ip', 'shoal']);
    assert.equal(nft.code, 0, `nft on ${name}: ${nft.stderr}`);
    for (const v of t.vips) if (new RegExp(`\\b${v.replace(/\./g, '\\.')}\\b`).test(nft.stdout)) left.push(`nft rules for VIP ${v}`);
    for (const p of t.ports) if (new RegExp(`(tcp|udp) \\. ${p}\\b`).test(nft.stdout)) left.push(`nft rules for port ${p}`);
    return left;
  };
  const removeStack = async (ns: string): Promise<void> => {
    const t = traces.get(ns) ?? await note(ns);
    const out = await ok('host1', ['stack', 'rm', ns]);
    assert.match(out, new RegExp(`Removing service ${ns}_`));
    assert.match(out, new RegExp(`Removing network ${ns}_`));
    for (const kind of ['services', 'networks']) {
      const r = await unixRequest(host('host1').dockerHost.replace(/^unix:\/\//, ''), 'GET', `/v1.41/${kind}?filters=${q({ label: { [`${NAMESPACE_LABEL}=${ns}`]: true } })}`);
      assert.deepEqual(JSON.parse(r.text), [], `${kind} of ${ns} left in the swarm`);
    }
    for (const h of session.hosts) {
      let left: string[] = [];
      await waitFor(`nothing of stack ${ns} left on ${h.name}`, async () => (left = await leftovers(h.name, t)).length === 0, 60_000, 500)
        .catch((err: Error) => { throw new Error(`${err.message}: ${left.join('; ')}`); });
    }
  };

  before(async () => {
    await ensureStackImages();
    mkdirSync(join(files, 'registry-data'), { recursive: true });
    mkdirSync(join(files, 'volumes'), { recursive: true });
    await runLab(INDEX, ['down', '--dir', dir], 120_000); // whatever an interrupted run left at this index
    session.hosts = parseHostLines(await lab(['up', '--hosts', '3', '--managers', '1', '--workers', '2']));
    const common = [STACK_IMAGES.registry, STACK_IMAGES.haproxy, STACK_IMAGES.visualizer, STACK_IMAGES.agent, STACK_IMAGES.portainer];
    // The application image starts on host2 only: the others get it from the stack's registry.
    await Promise.all(session.hosts.map((h) => loadImages(engineSocket(h.name), h.name === 'host2' ? [...common, ...WEB_VERSIONS.map(STACK_IMAGES.web)] : common)));
    ingressId = await ok('host1', ['network', 'inspect', '--format', '{{.Id}}', 'ingress']);
  });

  after(async () => {
    for (const h of session.hosts) { try { copyFileSync(join(dir, 'hosts', h.name, 'shoal.log'), join(dir, '..', `${h.name}.shoal.log`)); } catch { /* host never started */ } }
    await runLab(INDEX, ['down', '--dir', dir], 120_000);
  });

  test('seed 003 registry.yml: the registry on the labelled node; push through the mesh from another host, pull from a third', async () => {
    assert.equal(await ok('host1', ['node', 'update', '--label-add', 'registry=true', 'host1']), 'host1');
    writeFileSync(join(files, 'registry.yml'), registryYml(join(files, 'registry-data')));
    const out = await deploy(join(files, 'registry.yml'), 'registry');
    assert.match(out, /Creating network registry_default/);
    assert.match(out, /Creating service registry_server/);
    assert.deepEqual((await waitRunning('registry_server', 1)).map((t) => t.node), ['host1']);
    assert.match(await ok('host1', ['stack', 'ls']), /^registry\s+1(\s|$)/m);
    assert.match(await ok('host1', ['stack', 'services', 'registry']), new RegExp(`registry_server\\s+replicated\\s+1/1\\s+\\S+\\s+\\*:${REGISTRY_PORT}->5000/tcp`));
    await note('registry');

    // host2 runs no registry task: 127.0.0.1:5000 there is the routing mesh.
    await waitFor('the registry through host2\'s mesh', async () => (await hostGet('host2', `http://127.0.0.1:${REGISTRY_PORT}/v2/`)).code === 0, 60_000, 500);
    for (const v of WEB_VERSIONS) {
      await ok('host2', ['tag', STACK_IMAGES.web(v), appImage(v)]);
      const push = await ok('host2', ['push', appImage(v)]);
      assert.match(push, new RegExp(`${v}: digest: sha256:[0-9a-f]{64}`));
    }
    const catalog = await hostGet('host3', `http://${host('host1').address}:${REGISTRY_PORT}/v2/_catalog`);
    assert.deepEqual(JSON.parse(catalog.stdout), { repositories: ['app'] });
    await ok('host3', ['pull', appImage('1.0')]);
    assert.match(await ok('host3', ['image', 'inspect', '--format', '{{.Config.Labels}}', appImage('1.0')]), /web-1\.0/);
  });

  test('seed 003 app.yml: haproxy answers on the published port from every host; a redeploy rolls the servers to the new version', async () => {
    writeFileSync(join(files, 'haproxy.cfg'), HAPROXY_CFG);
    const file = join(files, 'app.yml');
    writeFileSync(file, appYml('1.0', join(files, 'haproxy.cfg')));
    const out = await deploy(file, 'app');
    for (const n of ['visualizer', 'backend', 'frontend']) assert.match(out, new RegExp(`Creating network app_${n}`));
    for (const s of ['visualizer', 'proxy', 'server']) assert.match(out, new RegExp(`Creating service app_${s}`));
    const first = await waitRunning('app_server', 3, appImage('1.0'));
    assert.ok(first.every((t) => t.node !== 'host1'), `servers on workers only: ${first.map((t) => t.node).join(' ')}`);
    assert.deepEqual((await waitRunning('app_proxy', 1)).map((t) => t.node), ['host1']);
    await waitRunning('app_visualizer', 1);
    await note('app');

    const answersEverywhere = async (version: string): Promise<void> => {
      for (const h of session.hosts) {
        for (const url of [`http://127.0.0.1:${APP_PORT}/hello-world/`, `http://${h.address}:${APP_PORT}/hello-world/`]) {
          let last = '';
          await waitFor(`version ${version} from ${url} in ${h.name}`, async () => {
            const r = await hostGet(h.name, url);
            last = `${r.code} ${r.stdout}${r.stderr}`;
            return r.code === 0 && r.stdout.includes('Hello World!') && r.stdout.includes(`version ${version}`);
          }, 90_000, 500).catch((err: Error) => { throw new Error(`${err.message}: ${last}`); });
        }
        // Without "hello-world" in the path, haproxy's default backend: the visualizer.
        assert.match((await hostGet(h.name, `http://${h.address}:${APP_PORT}/`)).stdout, /<title>Visualizer<\/title>/);
      }
    };
    await answersEverywhere('1.0');
    const serviceId = await ok('host1', ['service', 'inspect', '--format', '{{.ID}}', 'app_server']);

    // The seed's rolling update: the same file with the next image, deployed again.
    writeFileSync(file, appYml('1.1', join(files, 'haproxy.cfg')));
    const seen = new Map<string, number>();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const r = await hostGet('host3', `http://127.0.0.1:${APP_PORT}/hello-world/`);
        const v = r.code === 0 ? /version ([\d.]+)/.exec(r.stdout)?.[1] ?? 'other' : 'failed';
        seen.set(v, (seen.get(v) ?? 0) + 1);
        await new Promise((res) => setTimeout(res, 200));
      }
    })();
    const again = await deploy(file, 'app');
    assert.match(again, new RegExp(`Updating service app_server \\(id: ${serviceId}\\)`));
    assert.doesNotMatch(again, /Creating/);
    const updated = await waitRunning('app_server', 3, appImage('1.1'));
    assert.ok(updated.every((t) => !first.some((f) => f.id === t.id)), 'every server task replaced');
    await answersEverywhere('1.1');
    sampling = false;
    await sampler;
    process.stderr.write(`[stacks-lab] answers from host3 during the update: ${JSON.stringify(Object.fromEntries(seen))}\n`);
    assert.ok((seen.get('1.0') ?? 0) > 0 && (seen.get('1.1') ?? 0) > 0, `both versions answered while rolling: ${JSON.stringify(Object.fromEntries(seen))}`);
    // The updater waits its delay and monitor period after the last task too.
    await waitFor('the update completed', async () => (await ok('host1', ['service', 'inspect', '--format', '{{.ID}} {{.UpdateStatus.State}}', 'app_server'])) === `${serviceId} completed`, 60_000, 1000);
    const history = (await ok('host1', ['service', 'ps', '--format', '{{.Image}} {{.DesiredState}}', 'app_server'])).split('\n');
    assert.equal(history.filter((l) => l === `${appImage('1.0')} Shutdown`).length, 3, history.join('\n'));
  });

  test('seed 004 Portainer stack: the global agent on every host, tasks.agent one address per host', async () => {
    writeFileSync(join(files, 'portainer.yml'), portainerYml(join(files, 'volumes')));
    const out = await deploy(join(files, 'portainer.yml'), 'portainer');
    assert.match(out, /Creating network portainer_agent_network/);
    assert.deepEqual((await waitRunning('portainer_agent', 3)).map((t) => t.node).sort(), ['host1', 'host2', 'host3']);
    await waitRunning('portainer_portainer', 1);
    await note('portainer');
    const ids = (await ok('host1', ['service', 'ps', '-q', '--filter', 'desired-state=running', 'portainer_agent'])).split('\n');
    const addrs = (await ok('host1', ['inspect', '--format', '{{range .NetworksAttachments}}{{if eq .Network.Spec.Name "portainer_agent_network"}}{{range .Addresses}}{{.}} {{end}}{{end}}{{end}}', ...ids]))
      .split(/\s+/).filter(Boolean).map((a) => a.split('/')[0]!).sort();
    assert.equal(addrs.length, 3);
    const lookup = async () => {
      const r = await inTask('host1', 'portainer_portainer', 'nslookup tasks.agent 2>&1');
      return [...r.stdout.split('Name:').slice(1).join('\n').matchAll(/Address: ([0-9.]+)/g)].map((m) => m[1]!).sort();
    };
    assert.deepEqual(await waitFor('tasks.agent answers all three agents', async () => { const a = await lookup(); return a.length === 3 ? a : undefined; }, 30_000, 500), addrs);
    // The address Portainer is given (-H tcp://portainer_agent:9001) answers, from an agent of any host.
    const names = new Set<string>();
    for (let i = 0; i < 12; i++) names.add((await inTask('host1', 'portainer_portainer', 'timeout 3 wget -q -O- http://portainer_agent:9001/hostname')).stdout.trim());
    assert.ok(names.size >= 2, `the agents' VIP spread: ${[...names].join(' ')}`);
    for (const h of session.hosts) assert.match((await hostGet(h.name, `http://${h.address}:${PORTAINER_PORTS[0]}/`)).stdout, /portainer/);
  });

  test('docker stack rm of each leaves nothing behind on any host', async () => {
    for (const ns of ['portainer', 'app', 'registry']) await removeStack(ns);
    assert.doesNotMatch(await ok('host1', ['stack', 'ls']), /portainer|app|registry/);
    for (const h of session.hosts) {
      const cs = await engine(h.name, `/containers/json?all=1&filters=${q({ label: [NAMESPACE_LABEL] })}`) as unknown[];
      assert.equal(cs.length, 0, `stack containers left on ${h.name}`);
      const nets = (await engine(h.name, '/networks') as Array<{ Name: string }>).map((n) => n.Name).filter((n) => n.startsWith('shoal-'));
      assert.deepEqual(nets, [engineNetworkName(ingressId)], `engine networks on ${h.name}`);
      for (const p of [REGISTRY_PORT, APP_PORT, ...PORTAINER_PORTS]) {
        const r = await hostGet(h.name, `http://127.0.0.1:${p}/`);
        assert.notEqual(r.code, 0, `port ${p} still answers on ${h.name}`);
      }
    }
  });
});
