import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countsAnswering } from '../../../bench/sim-counts';

test('a simulator\'s counts are read from the line answering that ask, not from an earlier one or a periodic line', () => {
  const line = (o: object): string => JSON.stringify({ level: 30, msg: 'simulated nodes', ...o });
  const text = [
    line({ joined: 10, sessionMessages: 5, tasksInMessages: 9 }), // periodic: no "asked"
    line({ asked: 1, sessionMessages: 7, tasksInMessages: 20 }),
    '{"asked": 2, truncated',
    line({ asked: 2, sessionMessages: 'x', tasksInMessages: 1 }),
    line({ asked: 2, sessionMessages: 40, tasksInMessages: 300 }),
    '',
  ].join('\n');
  assert.deepEqual(countsAnswering(text, 2), { messages: 40, tasks: 300 });
  assert.deepEqual(countsAnswering(text, 1), { messages: 7, tasks: 20 });
  assert.equal(countsAnswering(text, 3), undefined);
  assert.equal(countsAnswering('', 1), undefined);
});
