import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NodeListJson } from '../../../src/api/routes/node-list';
import { fakeNode } from '../../helpers/control-fixture';

test('node list JSON: a worker is serialised once per version, a manager every time, a removed node forgotten', () => {
  const list = new NodeListJson();
  const w = fakeNode('w1', 'host-w', 'worker');
  const m = fakeNode('m1', 'host-m', 'manager');
  assert.deepEqual(JSON.parse(list.render([m, w]).text), [m, w]);
  // Changed in place without a new version: the kept JSON shows it is not serialised again.
  w.Description.Hostname = 'renamed';
  m.Description.Hostname = 'renamed-m';
  const again = JSON.parse(list.render([m, w]).text) as Array<{ Description: { Hostname: string } }>;
  assert.equal(again[1]!.Description.Hostname, 'host-w', 'the worker\'s JSON was kept');
  assert.equal(again[0]!.Description.Hostname, 'renamed-m', 'the manager\'s is made each time');
  // A new version is serialised anew.
  w.Version = { Index: 7 };
  assert.equal((JSON.parse(list.render([m, w]).text) as Array<{ Description: { Hostname: string } }>)[1]!.Description.Hostname, 'renamed');
  // Entries of nodes no longer listed go once the cache outgrows the list.
  const many = Array.from({ length: 150 }, (_, i) => fakeNode(`n${i}`, `h${i}`, 'worker'));
  list.render(many);
  list.render([w]);
  assert.ok((list as unknown as { kept: Map<string, unknown> }).kept.size <= 1);
  assert.equal(list.render([]).text, '[]');
});

test('node list JSON: an unchanged list is sent again as the same bytes; any changed node makes new ones', () => {
  const list = new NodeListJson();
  const w = fakeNode('w1', 'host-w', 'worker');
  const m = fakeNode('m1', 'host-m', 'manager');
  const first = list.render([m, w]);
  assert.equal(list.render([m, w]), first, 'nothing changed: the kept answer');
  assert.equal(first.bytes.at(-1), 0x0a, 'the bytes end with the newline every answer has');
  // A manager's liveness (serialised each time) changes the answer.
  m.ManagerStatus = { Reachability: 'unreachable', Addr: '127.0.0.1:2377' };
  const second = list.render([m, w]);
  assert.notEqual(second, first);
  assert.equal((JSON.parse(second.text) as Array<{ ManagerStatus?: { Reachability: string } }>)[0]!.ManagerStatus!.Reachability, 'unreachable');
  // So does a worker's new version, a filtered list, and a node gone.
  w.Version = { Index: 3 };
  w.Spec.Availability = 'drain';
  const third = list.render([m, w]);
  assert.notEqual(third, second);
  assert.equal((JSON.parse(third.text) as Array<{ Spec: { Availability: string } }>)[1]!.Spec.Availability, 'drain');
  assert.deepEqual(JSON.parse(list.render([w]).text), [w]);
  assert.deepEqual(JSON.parse(list.render([m]).text), [m]);
});
