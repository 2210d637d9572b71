import { test } from 'node:test';
import assert from 'node:assert/strict';
import { staleFlowDeletes } from '../../../src/agent/network/loadbalancer/conntrack';
import { buildRuleset } from '../../../src/agent/network/loadbalancer/ruleset';
import { NODE_A, view } from './fixtures';

const MARK = ['--mark', '0x10000000/0x10000000'];

test('a backend that stops running: its balanced flows are deleted, per VIP and per published port', () => {
  const before = buildRuleset(view(), NODE_A).frontends;
  const v = view();
  v.Endpoints = v.Endpoints.filter((e) => e.Addr !== '10.0.1.12' && e.Addr !== '10.0.0.12');
  const after = buildRuleset(v, NODE_A).frontends;
  const all = staleFlowDeletes(before, after).map((a) => a.join(' ')).sort();
  assert.deepEqual(all, [
    ['-D', '--orig-dst', '10.0.0.2', '--reply-src', '10.0.0.12', ...MARK],
    ['-D', '--orig-dst', '10.0.1.2', '--reply-src', '10.0.1.12', ...MARK],
    ['-D', '-p', 'tcp', '--orig-port-dst', '8080', '--reply-src', '10.0.0.12', '--reply-port-src', '80', ...MARK],
    ['-D', '-p', 'udp', '--orig-port-dst', '5353', '--reply-src', '10.0.0.12', '--reply-port-src', '53', ...MARK],
  ].map((a) => a.join(' ')).sort());
});

test('nothing changed: nothing deleted; a service gone: all its backends', () => {
  const before = buildRuleset(view(), NODE_A).frontends;
  assert.deepEqual(staleFlowDeletes(before, buildRuleset(view(), NODE_A).frontends), []);
  const gone = staleFlowDeletes(before, buildRuleset(view({ Services: [] }), NODE_A).frontends);
  assert.equal(gone.length, 4 * 3);
  assert.ok(gone.every((a) => a.join(' ').endsWith(MARK.join(' '))));
});
