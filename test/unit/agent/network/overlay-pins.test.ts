import { test } from 'node:test';
import assert from 'node:assert/strict';
import { livePins, viewTakesOver, type Pin } from '../../../../src/agent/network/overlay/pins';
import type { ViewNetwork } from '../../../../src/protocol/network-view';

const net = (id: string) => ({ ID: id, Name: id }) as unknown as ViewNetwork;

test('a pin keeps a network the view has not named yet, until it expires', () => {
  const pins = new Map<string, Pin>([['n1', { net: net('n1'), until: 1000 }]]);
  assert.deepEqual(livePins(pins, 500).map((n) => n.ID), ['n1']);
  assert.deepEqual(livePins(pins, 1001), []);
  assert.equal(pins.size, 0);
});

test('once the view names the network, the view decides: its pin goes, so a later view without it drops it at once', () => {
  const pins = new Map<string, Pin>([['n1', { net: net('n1'), until: 1000 }], ['n2', { net: net('n2'), until: 1000 }]]);
  viewTakesOver(pins, { Networks: [net('n1')] });
  // n1 now stands on the view alone; n2 is still only pinned.
  assert.deepEqual(livePins(pins, 100).map((n) => n.ID), ['n2']);
  // stack rm: the next view names neither; nothing keeps n1, long before the pin's end.
  viewTakesOver(pins, { Networks: [] });
  assert.deepEqual(livePins(pins, 300).map((n) => n.ID), ['n2']);
  assert.deepEqual([...pins.keys()], ['n2']);
});
