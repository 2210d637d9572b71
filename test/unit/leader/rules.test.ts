import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canRemoveManager } from '../../../src/manager/controlapi/nodes';
import { leaveManagerMessage, parseListenAddr } from '../../../src/daemon/swarm-state';
import { DEMOTED_MEMBER_GRACE_MS, planMembers, updateSightings, type MemberSightings } from '../../../src/manager/leader/members';
import { initialCluster } from '../../../src/store/etcd-members';

test('demotion quorum safeguard as SwarmKit: the reachable managers left must be a majority', () => {
  const up = new Set(['a', 'b', 'c']);
  assert.equal(canRemoveManager(['a', 'b', 'c'], 'c', 'a', (id) => up.has(id)), true);
  up.delete('b'); // b unreachable: removing c leaves a alone of two
  assert.equal(canRemoveManager(['a', 'b', 'c'], 'c', 'a', (id) => up.has(id)), false);
  assert.equal(canRemoveManager(['a', 'b'], 'b', 'a', () => false), true);
});

test("a manager's leave without --force: Docker's three texts", () => {
  assert.match(leaveManagerMessage(1, 0), /Removing the last manager erases all current state of the swarm/);
  assert.equal(leaveManagerMessage(2, 1), 'You are attempting to leave the swarm on a node that is participating as a manager. Removing this node leaves 1 managers out of 3. Without a Raft quorum your swarm will be inaccessible. The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message.');
  assert.equal(leaveManagerMessage(5, 0), 'You are attempting to leave the swarm on a node that is participating as a manager. The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message.');
});

test('member upkeep: started learners promoted, members of non-managers removed after a grace period, never itself, unstarted after a while', () => {
  const members = [
    { id: '1', name: 'a', peerUrls: ['https://10.0.0.1:4380'], learner: false },
    { id: '2', name: 'b', peerUrls: ['https://10.0.0.2:4380'], learner: true },
    { id: '3', name: 'c', peerUrls: ['https://10.0.0.3:4380'], learner: false },
    { id: '4', name: '', peerUrls: ['https://10.0.0.4:4380'], learner: true },
  ];
  const seen: MemberSightings = { unstarted: new Map(), notManager: new Map() };
  updateSightings(seen, members, new Set(['a', 'b']), 0);
  assert.deepEqual([...seen.unstarted], [['4', 0]]);
  assert.deepEqual([...seen.notManager], [['3', 0]]);
  // A demoted node's member is left to the node itself for a while (a promotion right after keeps it).
  assert.deepEqual(planMembers(members, new Set(['a', 'b']), 'a', seen, 1000), { promote: ['2'], remove: [] });
  assert.deepEqual(planMembers(members, new Set(['a', 'b']), 'a', seen, DEMOTED_MEMBER_GRACE_MS + 1), { promote: ['2'], remove: ['3'] });
  assert.deepEqual(planMembers(members, new Set(['b']), 'a', seen, 10 * 60_000), { promote: ['2'], remove: ['3', '4'] });
  // Promoted back within the grace period: no longer counted.
  updateSightings(seen, members, new Set(['a', 'b', 'c']), 2000);
  assert.deepEqual([...seen.notManager], []);
  assert.deepEqual(planMembers(members, new Set(['a', 'b', 'c']), 'a', seen, 10 * 60_000), { promote: ['2'], remove: ['4'] });
  assert.equal(initialCluster(members, 'd', 'https://10.0.0.4:4380'), 'a=https://10.0.0.1:4380,b=https://10.0.0.2:4380,c=https://10.0.0.3:4380,d=https://10.0.0.4:4380');
});

test('--listen-addr as dockerd reads it', () => {
  assert.deepEqual(parseListenAddr(undefined), { host: '0.0.0.0', port: 2377 });
  assert.deepEqual(parseListenAddr(':4000'), { host: '0.0.0.0', port: 4000 });
  assert.deepEqual(parseListenAddr('10.1.2.3'), { host: '10.1.2.3', port: 2377 });
});
