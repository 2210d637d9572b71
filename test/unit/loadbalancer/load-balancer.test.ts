import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../src/common/log';
import type { RunOptions, RunResult } from '../../../src/common/run';
import { LoadBalancer } from '../../../src/agent/network/loadbalancer/load-balancer';
import { interfacesWith } from '../../../src/agent/network/loadbalancer/localnet';
import { portsWithoutHairpin } from '../../../src/agent/network/loadbalancer/hairpin';
import { NODE_A, view } from './fixtures';

interface Call { cmd: string; args: string[]; input?: string }

// Records every command; `answer` decides the result (default: success).
function fakeExec(answer: (c: Call) => Partial<RunResult> = () => ({})) {
  const calls: Call[] = [];
  const exec = async (cmd: string, args: string[], opts?: RunOptions): Promise<RunResult> => {
    const c = { cmd, args, ...(opts?.input !== undefined ? { input: opts.input } : {}) };
    calls.push(c);
    return { code: 0, stdout: '', stderr: '', ...answer(c) };
  };
  return { calls, exec };
}

const IP_JSON = JSON.stringify([
  { ifname: 'lo', addr_info: [{ local: '127.0.0.1' }] },
  { ifname: 'br-ingress', addr_info: [{ local: '10.0.0.1' }, { local: '10.0.0.3' }] },
]);

test('writes the table once per change, accepts in FORWARD, enables route_localnet where the ingress LB address lives', async () => {
  const { calls, exec } = fakeExec((c) => (c.cmd === 'ip' ? { stdout: IP_JSON } : c.cmd === 'sysctl' && c.args[0] === '-n' ? { stdout: '0\n' } : {}));
  const lb = new LoadBalancer({ nodeId: NODE_A, nodeAddr: '10.199.9.2', log: silentLogger, exec });
  assert.equal(await lb.apply(view()), true);
  assert.equal(await lb.apply(view()), false);
  const nft = calls.filter((c) => c.cmd === 'nft');
  assert.equal(nft.length, 1);
  assert.match(nft[0]!.input!, /^table ip shoal \{\}\ndelete table ip shoal\ntable ip shoal \{/);
  assert.ok(calls.some((c) => c.cmd === 'iptables' && c.args.includes('-C') && c.args.includes('DOCKER-USER')));
  assert.ok(calls.some((c) => c.cmd === 'sysctl' && c.args.join(' ') === '-qw net/ipv4/conf/br-ingress/route_localnet=1'));
  assert.equal(calls.filter((c) => c.cmd === 'conntrack').length, 0);
});

test('a removed backend: the new table, then its conntrack entries deleted', async () => {
  const { calls, exec } = fakeExec();
  const lb = new LoadBalancer({ nodeId: NODE_A, nodeAddr: '10.199.9.2', log: silentLogger, exec });
  await lb.update(view());
  const v = view();
  v.Endpoints = v.Endpoints.filter((e) => e.Addr !== '10.0.1.13');
  await lb.update(v);
  const last = calls.slice(calls.map((c) => c.cmd).lastIndexOf('nft'));
  assert.deepEqual(last.filter((c) => c.cmd === 'conntrack').map((c) => c.args.slice(0, 5)), [['-D', '--orig-dst', '10.0.1.2', '--reply-src', '10.0.1.13']]);
});

test('nft refuses: the previous table stays and the next update tries again; update never throws', async () => {
  let refuse = true;
  const { calls, exec } = fakeExec((c) => (c.cmd === 'nft' && refuse ? { code: 1, stderr: 'Error: syntax error' } : {}));
  const lb = new LoadBalancer({ nodeId: NODE_A, nodeAddr: '10.199.9.2', log: silentLogger, exec });
  await lb.update(view());
  refuse = false;
  assert.equal(await lb.apply(view()), true);
  assert.equal(calls.filter((c) => c.cmd === 'nft').length, 2);
  const throwing = new LoadBalancer({ nodeId: NODE_A, nodeAddr: '', log: silentLogger, exec: async () => { throw new Error('boom'); } });
  await throwing.update(view());
});

test('close removes the table and the FORWARD rule; later updates do nothing', async () => {
  const { calls, exec } = fakeExec((c) => (c.cmd === 'iptables' && c.args.includes('-D') ? { code: 1 } : {}));
  const lb = new LoadBalancer({ nodeId: NODE_A, nodeAddr: '10.199.9.2', log: silentLogger, exec });
  await lb.update(view());
  await lb.close();
  const n = calls.length;
  assert.ok(calls.some((c) => c.cmd === 'nft' && c.input === 'table ip shoal {}\ndelete table ip shoal\n'));
  assert.ok(calls.some((c) => c.cmd === 'iptables' && c.args.includes('-D') && c.args.includes('DOCKER-USER')));
  await lb.update(view());
  assert.equal(calls.length, n);
});

test('interfacesWith reads `ip -j addr` and ignores what it cannot read', () => {
  assert.deepEqual(interfacesWith(IP_JSON, ['10.0.0.3']), ['br-ingress']);
  assert.deepEqual(interfacesWith('not json', ['10.0.0.3']), []);
  assert.deepEqual(interfacesWith('[{"ifname":3},{"addr_info":null}]', ['10.0.0.3']), []);
});

test('portsWithoutHairpin picks the veth ports that lack it, never the VXLAN port', () => {
  const ports = JSON.stringify([
    { ifname: 'veth1', linkinfo: { info_kind: 'veth', info_slave_data: { hairpin: false } } },
    { ifname: 'veth2', linkinfo: { info_kind: 'veth', info_slave_data: { hairpin: true } } },
    { ifname: 'vx4097', linkinfo: { info_kind: 'vxlan', info_slave_data: { hairpin: false } } },
    { ifname: 'odd' },
  ]);
  assert.deepEqual(portsWithoutHairpin(ports), ['veth1']);
  assert.deepEqual(portsWithoutHairpin('{'), []);
});
