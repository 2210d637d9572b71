import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { SHOAL_MAIN, startShoal, waitFor, type ShoalHandle } from '../../helpers/daemon';

// `shoal sim`: simulated nodes join a real one-manager swarm with the worker
// token, hold sessions, take tasks and report them running without starting
// a container; stopped, they go Down and their tasks are replaced.
describe('simulated nodes (shoal sim)', () => {
  let shoal: ShoalHandle;
  let sim: ChildProcess | undefined;
  let simOut = '';
  const NODES = 12;
  const ok = async (args: string[]) => {
    const r = await shoal.docker(args);
    assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}${r.stdout}`);
    return r.stdout.trim();
  };
  const nodes = async () => (await ok(['node', 'ls', '--format', '{{.Hostname}} {{.Status}}'])).split('\n').map((l) => l.split(' ') as [string, string]);

  before(async () => {
    shoal = await startShoal({ hostname: 'simmgr' });
    await ok(['swarm', 'init', '--advertise-addr', '127.0.0.1']);
  });
  after(async () => {
    if (sim && sim.exitCode === null) sim.kill('SIGKILL');
    await shoal?.cleanup();
  });

  test('bad arguments are refused with the usage', async () => {
    const run = (more: string[]) => new Promise<{ code: number | null; err: string }>((resolve) => {
      const p = spawn(process.execPath, [SHOAL_MAIN, 'sim', '--manager', '127.0.0.1', '--token', 'x', ...more], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      p.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
      p.on('exit', (code) => resolve({ code, err }));
    });
    const r = await run(['--nodes', '0']);
    assert.equal(r.code, 1);
    assert.match(r.err, /--nodes wants a whole number from 1 to 20000, got "0"/);
    const fast = await run(['--nodes', '1', '--ping-ms', '500']);
    assert.equal(fast.code, 1);
    assert.match(fast.err, /--ping-ms wants a whole number from 1000 to 600000, got "500"/);
  });

  test(`${NODES} nodes join, run a service's tasks, and go Down when stopped`, async () => {
    const token = await ok(['swarm', 'join-token', '-q', 'worker']);
    const addr = await ok(['info', '--format', '{{(index .Swarm.RemoteManagers 0).Addr}}']);
    sim = spawn(process.execPath, [SHOAL_MAIN, 'sim', '--manager', addr, '--token', token, '--nodes', String(NODES), '--prefix', 'simt'], { stdio: ['ignore', 'pipe', 'pipe'] });
    sim.stdout!.on('data', (d: Buffer) => { simOut += d.toString(); });
    sim.stderr!.on('data', (d: Buffer) => { simOut += d.toString(); });

    await waitFor(`${NODES} simulated nodes Ready`, async () => {
      const sims = (await nodes()).filter(([h]) => h.startsWith('simt-'));
      return sims.length === NODES && sims.every(([, s]) => s === 'Ready');
    }, 90_000, 500).catch((err: Error) => { throw new Error(`${err.message}\n${simOut.slice(-2000)}`); });

    // Tasks only on the simulated nodes: they report running without any container on the engine.
    await ok(['service', 'create', '-d', '--name', 'simsvc', '--replicas', String(3 * NODES), '--constraint', 'node.role==worker', 'shoal-test/no-such-image:1', 'sleep', '1']);
    await waitFor('every replica running', async () => (await ok(['service', 'ls', '--filter', 'name=simsvc', '--format', '{{.Replicas}}'])) === `${3 * NODES}/${3 * NODES}`, 90_000, 500);
    const hosts = new Set((await ok(['service', 'ps', '--filter', 'desired-state=running', '--format', '{{.Node}}', 'simsvc'])).split('\n'));
    assert.equal(hosts.size, NODES, 'spread over every simulated node');
    assert.equal((await shoal.dockerEngine(['ps', '-q', '--filter', 'label=com.docker.swarm.service.name=simsvc'])).stdout.trim(), '', 'no container on the engine');

    // Stopped: the nodes go Down (heartbeats end) and the process exits cleanly.
    const exited = new Promise<number | null>((resolve) => sim!.once('exit', (c) => resolve(c)));
    sim.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<string>((resolve) => setTimeout(() => resolve('still running after 30 s'), 30_000).unref())]);
    assert.equal(code, 0, simOut.slice(-2000));
    await waitFor('simulated nodes Down', async () => (await nodes()).filter(([h]) => h.startsWith('simt-')).every(([, s]) => s === 'Down'), 60_000, 500);
    await ok(['service', 'rm', 'simsvc']);
  });
});
