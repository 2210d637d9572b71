// `shoal backup FILE` and `shoal restore FILE`: the CLI side. The daemon does
// the work (it owns etcd and the keys); this end talks to its socket and
// reads or writes the file.
import { request } from 'node:http';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { decodeBackup } from '../store/backup-file';
import { BACKUP_PATH, RESTORE_PATH } from '../api/routes/recovery';

export const BACKUP_USAGE = `Usage: shoal backup [-H unix:///PATH.sock] FILE

Writes a consistent snapshot of this manager's swarm to FILE (mode 0600): every
object in the cluster store read at one etcd revision, with the swarm's root CA
certificate and its data key. The data key opens the CA's private key and every
secret value: whoever holds FILE can act as the swarm's CA and read its secrets.
Keep it as you keep those. Needs a reachable quorum of managers.
  -H, --host   the Shoal daemon (default $DOCKER_HOST if unix://, else unix:///run/shoal/shoal.sock)
`;

export const RESTORE_USAGE = `Usage: shoal restore [-H unix:///PATH.sock] FILE

Starts a one-manager swarm on this host (which must be in no swarm) from a file
written by \`shoal backup\`: same cluster ID, root CA, join tokens, services,
secrets, configs and networks. This host becomes a new manager node; the
backed-up managers are listed as unreachable managers (\`docker node demote\`,
then \`docker node rm\`, clears them), and their tasks are rescheduled. Workers
join again with \`docker swarm leave\` then \`docker swarm join --token <the old
worker token> <this host>:2377\`. A truncated or corrupt file, an unknown format
version, or a host already in a swarm is refused and nothing is changed.
  -H, --host   the Shoal daemon (default $DOCKER_HOST if unix://, else unix:///run/shoal/shoal.sock)
`;

const DEFAULT_HOST = 'unix:///run/shoal/shoal.sock';

export async function runRecovery(cmd: 'backup' | 'restore', argv: string[]): Promise<number> {
  const usage = cmd === 'backup' ? BACKUP_USAGE : RESTORE_USAGE;
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { host: { type: 'string', short: 'H' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (err) {
    process.stderr.write(`shoal ${cmd}: ${(err as Error).message}\n\n${usage}`);
    return 1;
  }
  if (parsed.values.help) { process.stdout.write(usage); return 0; }
  const [file, ...extra] = parsed.positionals;
  if (!file || extra.length) { process.stderr.write(`shoal ${cmd}: expected one FILE\n\n${usage}`); return 1; }
  const host = parsed.values.host ?? (process.env.DOCKER_HOST?.startsWith('unix://') ? process.env.DOCKER_HOST : DEFAULT_HOST);
  if (!host.startsWith('unix://')) { process.stderr.write(`shoal ${cmd}: only a unix:// daemon socket is supported, got ${host}\n`); return 1; }
  const socketPath = host.slice('unix://'.length);
  try {
    if (cmd === 'backup') {
      const body = await call(socketPath, 'GET', BACKUP_PATH);
      // Never a partial file under FILE's name; never readable by others.
      const tmp = `${file}.tmp-${process.pid}`;
      try {
        writeFileSync(tmp, body, { mode: 0o600, flag: 'wx' });
        renameSync(tmp, file);
      } finally { rmSync(tmp, { force: true }); }
      process.stderr.write(`backup written to ${file} (${body.length} bytes; it holds the swarm's keys: keep it private)\n`);
      return 0;
    }
    const data = readFileSync(file);
    decodeBackup(data); // refuse a bad file here, before the daemon is asked
    const out = JSON.parse((await call(socketPath, 'POST', RESTORE_PATH, data)).toString('utf8')) as { NodeID?: string };
    process.stdout.write(`${out.NodeID ?? ''}\n`);
    process.stderr.write('swarm restored: this host is its only manager\n');
    return 0;
  } catch (err) {
    process.stderr.write(`shoal ${cmd}: ${(err as Error).message}\n`);
    return 1;
  }
}

// One request to the daemon; a non-200 answer rejects with the daemon's message.
function call(socketPath: string, method: 'GET' | 'POST', path: string, body?: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method, headers: body ? { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const data = Buffer.concat(chunks);
        if (res.statusCode === 200) { resolve(data); return; }
        let msg = data.toString('utf8').trim();
        try { msg = (JSON.parse(msg) as { message?: string }).message ?? msg; } catch { /* not JSON */ }
        reject(new Error(`Error response from daemon: ${msg}`));
      });
    });
    req.setTimeout(300_000, () => req.destroy(new Error('the daemon did not answer within 300 s')));
    req.on('error', (err) => reject(new Error(`cannot reach the Shoal daemon at unix://${socketPath}: ${err.message}`)));
    req.end(body);
  });
}
