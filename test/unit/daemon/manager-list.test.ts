import { test } from 'node:test';
import assert from 'node:assert/strict';
import { managerList } from '../../../src/daemon/manager-list';
import { makeNode } from '../orchestrator/fixtures';
import type { Node } from '../../../src/model/types';

const manager = (id: string, state: Node['Status']['State'], addr: string): Node => {
  const n = makeNode(id, { state });
  return { ...n, Spec: { ...n.Spec, Role: 'manager' }, ManagerStatus: { Reachability: 'reachable', Addr: addr } };
};

test('the managers a node is told of: this one first, the leader named, down ones left out unless leading or this one, workers never', () => {
  const nodes = [
    manager('m1', 'ready', '10.0.0.1:2377'), manager('m2', 'down', '10.0.0.2:2377'), manager('m3', 'ready', '10.0.0.3:2377'),
    manager('m4', 'unknown', '10.0.0.4:2377'), makeNode('w1', { state: 'ready' }),
  ];
  assert.deepEqual(managerList(nodes, 'm1', 'm3'), { leaderAddr: '10.0.0.1:2377', addrs: ['10.0.0.3:2377', '10.0.0.1:2377', '10.0.0.4:2377'] });
  // Down but leading (its node not updated yet), or down but this very manager: kept.
  assert.deepEqual(managerList(nodes, 'm2', 'm3'), { leaderAddr: '10.0.0.2:2377', addrs: ['10.0.0.3:2377', '10.0.0.1:2377', '10.0.0.2:2377', '10.0.0.4:2377'] });
  assert.deepEqual(managerList(nodes, undefined, 'm2'), { addrs: ['10.0.0.2:2377', '10.0.0.1:2377', '10.0.0.3:2377', '10.0.0.4:2377'] });
  // A restored swarm: the old managers all down, only this one told of.
  assert.deepEqual(managerList([manager('old1', 'down', 'a:1'), manager('old2', 'down', 'b:1'), manager('new', 'ready', 'c:1')], 'new', 'new'), { leaderAddr: 'c:1', addrs: ['c:1'] });
});
