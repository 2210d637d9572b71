import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildRecords } from '../../../../../src/agent/network/dns/records';
import { resolve, type Resolution } from '../../../../../src/agent/network/dns/resolver';
import { parseResolvConf } from '../../../../../src/agent/network/dns/upstream';
import { BACK, ep, sampleView } from './fixtures';

const records = buildRecords(sampleView());
const ask = (asker: string, name: string, type = 'A'): Resolution => resolve(records, asker, { name, type, class: 'IN' });
const addrs = (r: Resolution): string[] => {
  assert.equal(r.kind, 'a', JSON.stringify(r));
  return r.kind === 'a' ? [...r.addrs].sort() : [];
};

const WEB1 = '10.0.1.11';   // a task on front only
const DB1 = '10.0.2.21';    // a task on back only
const API1 = '10.0.1.31';   // a task on both

test('a vip-mode service answers its VIP on the asker network; any case, with or without the final dot', () => {
  assert.deepEqual(addrs(ask(WEB1, 'web')), ['10.0.1.2']);
  assert.deepEqual(addrs(ask(WEB1, 'WeB.')), ['10.0.1.2']);
  assert.deepEqual(addrs(ask(WEB1, 'api')), ['10.0.1.3']);
  assert.deepEqual(addrs(ask(DB1, 'api')), ['10.0.2.3']);
  // An asker on both networks sees the VIP of each.
  assert.deepEqual(addrs(ask(API1, 'api')), ['10.0.1.3', '10.0.2.3']);
});

test('tasks.SERVICE answers the running tasks only', () => {
  assert.deepEqual(addrs(ask(WEB1, 'tasks.web')), ['10.0.1.11', '10.0.1.12']);
  assert.deepEqual(addrs(ask(DB1, 'TASKS.DB.')), ['10.0.2.21', '10.0.2.22']);
});

test('dnsrr answers the running tasks, shuffled', () => {
  assert.deepEqual(addrs(ask(DB1, 'db')), ['10.0.2.21', '10.0.2.22']);
  const first = (rand: number) => {
    const r = resolve(records, DB1, { name: 'db', type: 'A' }, () => rand);
    return r.kind === 'a' ? r.addrs[0] : undefined;
  };
  assert.notEqual(first(0), first(0.99));
});

test('names are scoped to the asker networks: another network\'s service is forwarded', () => {
  assert.deepEqual(ask(WEB1, 'db'), { kind: 'forward' });
  assert.deepEqual(ask(WEB1, 'tasks.db'), { kind: 'forward' });
  assert.deepEqual(ask(DB1, 'web'), { kind: 'forward' });
  assert.deepEqual(ask(DB1, 'web.1.t1'), { kind: 'forward' });
});

test('network aliases answer like the service name, on their own network only', () => {
  assert.deepEqual(addrs(ask(DB1, 'database')), ['10.0.2.21', '10.0.2.22']);
  assert.deepEqual(addrs(ask(DB1, 'tasks.database')), ['10.0.2.21', '10.0.2.22']);
  assert.deepEqual(addrs(ask(WEB1, 'backend')), ['10.0.1.3']);
  assert.deepEqual(ask(DB1, 'backend'), { kind: 'forward' });
});

test('a task name answers its address (running or not yet)', () => {
  assert.deepEqual(addrs(ask(WEB1, 'web.2.t2')), ['10.0.1.12']);
  assert.deepEqual(addrs(ask(WEB1, 'web.3.t3')), ['10.0.1.13']);
  assert.deepEqual(addrs(ask(API1, 'db.1.d1')), ['10.0.2.21']);
});

test('AAAA and other types of a known name are NODATA; of an unknown name, forwarded', () => {
  assert.deepEqual(ask(WEB1, 'web', 'AAAA'), { kind: 'nodata' });
  assert.deepEqual(ask(WEB1, 'tasks.web', 'MX'), { kind: 'nodata' });
  assert.deepEqual(ask(WEB1, 'example.com', 'AAAA'), { kind: 'forward' });
  assert.deepEqual(ask(WEB1, 'example.com'), { kind: 'forward' });
  assert.deepEqual(resolve(records, WEB1, { name: 'web', type: 'TXT', class: 'CH' }), { kind: 'forward' });
});

test('an asker the view does not list is scoped by the subnets that hold its address; outside all, everything is forwarded', () => {
  assert.deepEqual(addrs(ask('10.0.2.200', 'db')), ['10.0.2.21', '10.0.2.22']);
  assert.deepEqual(ask('10.0.2.200', 'web'), { kind: 'forward' });
  assert.deepEqual(ask('172.17.0.5', 'web'), { kind: 'forward' });
  assert.deepEqual(ask('not an address', 'web'), { kind: 'forward' });
});

test('the ingress network gives no names, but its address still tells which task asks', () => {
  assert.deepEqual(addrs(ask('10.255.0.11', 'web')), ['10.0.1.2']);
  assert.deepEqual(ask('10.255.0.99', 'web'), { kind: 'forward' });
});

test('PTR of a task or a VIP on the asker networks', () => {
  assert.deepEqual(ask(WEB1, '12.1.0.10.in-addr.arpa', 'PTR'), { kind: 'ptr', name: 'web.2.t2' });
  assert.deepEqual(ask(WEB1, '2.1.0.10.in-addr.arpa.', 'PTR'), { kind: 'ptr', name: 'web' });
  assert.deepEqual(ask(WEB1, '21.2.0.10.in-addr.arpa', 'PTR'), { kind: 'forward' });
  assert.deepEqual(ask(WEB1, '1.1.1.1.in-addr.arpa', 'PTR'), { kind: 'forward' });
});

test('a new view replaces every name: a removed task is gone at once, a new one is there', () => {
  const view = sampleView();
  view.Endpoints = view.Endpoints.filter((e) => e.TaskID !== 'd2');
  view.Endpoints.push(ep('d3', 'db.3.d3', 's-db', BACK, '10.0.2.23'));
  const next = buildRecords(view);
  const r = resolve(next, DB1, { name: 'tasks.db', type: 'A' });
  assert.deepEqual(r.kind === 'a' ? [...r.addrs].sort() : r, ['10.0.2.21', '10.0.2.23']);
  assert.deepEqual(resolve(next, DB1, { name: 'db.2.d2', type: 'A' }), { kind: 'forward' });
});

test('a service without running tasks: known (NODATA), not forwarded', () => {
  const view = sampleView();
  view.Endpoints = view.Endpoints.filter((e) => e.ServiceID !== 's-db');
  const r = buildRecords(view);
  assert.deepEqual(resolve(r, '10.0.2.200', { name: 'db', type: 'A' }), { kind: 'nodata' });
  assert.deepEqual(resolve(r, '10.0.2.200', { name: 'tasks.database', type: 'A' }), { kind: 'nodata' });
});

test('resolv.conf: nameservers in order, without loopback or our own address, at most three', () => {
  const text = [
    '# comment', 'search example.com', 'nameserver 127.0.0.53', 'nameserver 10.1.1.1',
    'nameserver ::1', 'nameserver 169.254.53.53', 'nameserver fe80::1%eth0', 'nameserver bogus',
    'nameserver 10.1.1.1', 'nameserver 10.2.2.2', 'nameserver 10.3.3.3',
  ].join('\n');
  assert.deepEqual(parseResolvConf(text, ['169.254.53.53']).map((u) => u.addr), ['10.1.1.1', 'fe80::1', '10.2.2.2']);
  assert.deepEqual(parseResolvConf(''), []);
});

test('a malformed item of the view is left out alone', () => {
  const view = sampleView() as unknown as Record<string, unknown[]>;
  view.Endpoints!.push(null, { TaskID: 'x', TaskName: 'x.1.x', ServiceID: 's-web', NetworkID: BACK, Addr: 'nope' }, { TaskID: 7 });
  view.Services!.push({ ID: 's-bad', Name: 'bad', EndpointMode: 'vip', VIPs: 'oops', Aliases: [{ NetworkID: BACK, Aliases: [null, 'ok-alias'] }] }, 'junk');
  view.Networks!.push({ ID: 'n-bad', Subnet: 42 });
  const r = buildRecords(view as unknown as ReturnType<typeof sampleView>);
  assert.deepEqual(resolve(r, WEB1, { name: 'tasks.web', type: 'A' }).kind, 'a');
  assert.deepEqual(resolve(r, DB1, { name: 'x.1.x', type: 'A' }), { kind: 'forward' });
  assert.deepEqual(resolve(r, DB1, { name: 'ok-alias', type: 'A' }), { kind: 'nodata' });
  assert.deepEqual(buildRecords({} as ReturnType<typeof sampleView>).names.size, 0);
});

test('a container on --internal networks only: the swarm\'s names answer, nothing is forwarded upstream (refused); a routed network as well allows it', () => {
  const view = sampleView();
  view.Networks.push({ ID: 'net-secret', Name: 'secret', Subnet: '10.0.9.0/24', Gateway: '10.0.9.1', VNI: 4099, Internal: true, Attachable: true, Ingress: false, Encrypted: false, Labels: {} });
  view.Services.push({ ID: 's-vault', Name: 'vault', EndpointMode: 'vip', VIPs: [{ NetworkID: 'net-secret', Addr: '10.0.9.2' }], Ports: [], Aliases: [], KeepClientIP: false });
  view.Endpoints.push(ep('v1', 'vault.1.v1', 's-vault', 'net-secret', '10.0.9.11'), ep('b1', 'both.1.b1', 's-both', 'net-secret', '10.0.9.12'), ep('b1', 'both.1.b1', 's-both', BACK, '10.0.2.41'));
  const r = buildRecords(view);
  assert.deepEqual(resolve(r, '10.0.9.11', { name: 'vault', type: 'A' }), { kind: 'a', addrs: ['10.0.9.2'] });
  assert.deepEqual(resolve(r, '10.0.9.11', { name: 'example.com', type: 'A' }), { kind: 'refuse' });
  assert.deepEqual(resolve(r, '10.0.9.11', { name: '4.3.2.1.in-addr.arpa', type: 'PTR' }), { kind: 'refuse' });
  // An address of the internal subnet the view does not list yet: refused too.
  assert.deepEqual(resolve(r, '10.0.9.99', { name: 'example.com', type: 'A' }), { kind: 'refuse' });
  // On an internal and a routed network, asking from either address.
  assert.deepEqual(resolve(r, '10.0.9.12', { name: 'example.com', type: 'A' }), { kind: 'forward' });
  assert.deepEqual(resolve(r, '10.0.2.41', { name: 'example.com', type: 'A' }), { kind: 'forward' });
  assert.deepEqual(resolve(r, WEB1, { name: 'example.com', type: 'A' }), { kind: 'forward' });
  assert.deepEqual(resolve(r, '192.168.5.5', { name: 'example.com', type: 'A' }), { kind: 'forward' });
});
