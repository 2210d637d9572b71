import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dispatchOrder } from '../../../src/manager/loop/write-order';

// Items as [name, node]; a node of '' is one not placed yet.
const order = (items: Array<[string, string]>, perNode: number): string[] =>
  dispatchOrder(items, ([, node]) => node || undefined, perNode).map(([name]) => name);

test('dispatchOrder: each node its next group in turn, nodes in the order they first appear', () => {
  const items: Array<[string, string]> = [['a1', 'A'], ['b1', 'B'], ['a2', 'A'], ['c1', 'C'], ['b2', 'B'], ['a3', 'A'], ['b3', 'B'], ['a4', 'A'], ['a5', 'A']];
  assert.deepEqual(order(items, 2), ['a1', 'a2', 'b1', 'b2', 'c1', 'a3', 'a4', 'b3', 'a5']);
  assert.deepEqual(order(items, 8), ['a1', 'a2', 'a3', 'a4', 'a5', 'b1', 'b2', 'b3', 'c1']);
  assert.deepEqual(order(items, 1), ['a1', 'b1', 'c1', 'a2', 'b2', 'a3', 'b3', 'a4', 'a5']);
});

test('dispatchOrder: unplaced items first, in their order; nothing added or lost', () => {
  const items: Array<[string, string]> = [['a1', 'A'], ['x1', ''], ['b1', 'B'], ['x2', ''], ['a2', 'A']];
  assert.deepEqual(order(items, 8), ['x1', 'x2', 'a1', 'a2', 'b1']);
  assert.deepEqual(order([], 8), []);
  // A big spread placement (slot after slot, node after node): a permutation.
  const many: Array<[string, string]> = Array.from({ length: 10_000 }, (_, i) => [`t${i}`, `n${i % 997}`]);
  const out = order(many, 8);
  assert.equal(out.length, many.length);
  assert.equal(new Set(out).size, many.length);
});

test('dispatchOrder: a group size that is not a whole number of at least 1 is refused', () => {
  assert.throws(() => order([['a', 'A']], 0), /perNode/);
  assert.throws(() => order([['a', 'A']], 1.5), /perNode/);
});
