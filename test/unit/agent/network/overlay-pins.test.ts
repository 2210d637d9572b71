import { test } from 'node:test';
import assert from 'node:assert/strict';
import { livePins, type Pin } from '../../../../src/agent/network/overlay/pins';
import type { ViewNetwork } from '../../../../src/protocol/network-view';

const net = (id: string) => ({ ID: id, Name: id }) as unknown as ViewNetwork;

test('a pin keeps a network the view has not named yet, until it expires', () => {
  const pins = new Map<string, Pin>([['n1', { net: net('n1'), until: 1000 }]]);
  assert.deepEqual(livePins(pins, new Set(), 500).map((n) => n.ID), ['n1']);
  assert.deepEqual(livePins(pins, new Set(), 1001), []);
  assert.equal(pins.size, 0);
});

test('once the view named the network, the view decides: dropped from the view, gone at once', () => {
  const pins = new Map<string, Pin>([['n1', { net: net('n1'), until: 1000 }], ['n2', { net: net('n2'), until: 1000 }]]);
  assert.deepEqual(livePins(pins, new Set(['n1']), 100).map((n) => n.ID), ['n1', 'n2']);
  assert.deepEqual(livePins(pins, new Set(['n1']), 200).map((n) => n.ID), ['n1', 'n2']);
  // stack rm: the view no longer names n1, long before the pin's end.
  assert.deepEqual(livePins(pins, new Set(), 300).map((n) => n.ID), ['n2']);
  assert.deepEqual([...pins.keys()], ['n2']);
});
