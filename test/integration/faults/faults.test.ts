import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { FAULTS } from '../../faults/nemesis';

// The fault test's short form (issue 10): six rounds on a five-host lab
// (index 30 unless SHOAL_LAB_INDEX says otherwise), one of each fault kind in
// turn, with clients writing through random managers; the checker must find
// nothing. The seed is random unless SHOAL_FAULTS_SEED is set; a failure
// prints the command that replays it. The long form: `npm run faults -- --rounds 200`.
const RUN = resolve(__dirname, '../../faults/run.js');
const ROUNDS = FAULTS.length;
const LIMIT_MS = 14 * 60_000;

test(`fault test: ${ROUNDS} rounds, 0 anomalies`, { timeout: LIMIT_MS + 60_000 }, async () => {
  const seed = process.env.SHOAL_FAULTS_SEED ?? String(Math.floor(Math.random() * 2 ** 31));
  const env: NodeJS.ProcessEnv = { ...process.env, SHOAL_LAB_INDEX: process.env.SHOAL_LAB_INDEX ?? '30' };
  const { code, out } = await new Promise<{ code: number; out: string }>((done) => {
    const child = spawn(process.execPath, [RUN, '--rounds', String(ROUNDS), '--seed', seed, '--cycle', '--clients', '3'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    const take = (d: Buffer): void => { text += d.toString(); process.stdout.write(d); };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    // The run downs its lab itself; a run past the limit is killed (and `lab down` runs on the next start).
    const timer = setTimeout(() => child.kill('SIGKILL'), LIMIT_MS);
    child.on('close', (c) => { clearTimeout(timer); done({ code: c ?? -1, out: text }); });
  });
  assert.match(out, new RegExp(`^${ROUNDS} rounds, 0 anomalies$`, 'm'), `seed ${seed}:\n${out.split('\n').slice(-40).join('\n')}`);
  assert.equal(code, 0);
});
