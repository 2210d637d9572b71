// `shoal lab ...`: parses, runs the verb, prints. Host lines go to stdout
// (`NAME DOCKER_HOST ADDRESS`, one per host, for scripts); notes to stderr.
import { labDown, labKill, labPartition, labStart, labStatus, labUp, type HostLine } from './lab';
import { LAB_USAGE, parseLabArgs } from './options';

// `NAME DOCKER_HOST ADDRESS`, then the role the lab joined it with, if any.
const hostLine = (h: HostLine): string => `${h.name} ${h.dockerHost} ${h.address}${h.role ? ` ${h.role}` : ''}`;

export async function runLab(argv: string[]): Promise<number> {
  if (argv.length === 0 || ['-h', '--help', 'help'].includes(argv[0]!)) {
    process.stdout.write(LAB_USAGE);
    return argv.length ? 0 : 1;
  }
  let cmd;
  try { cmd = parseLabArgs(argv); } catch (err) {
    process.stderr.write(`shoal lab: ${(err as Error).message}\n\n${LAB_USAGE}`);
    return 1;
  }
  const out = (s: string): void => { process.stdout.write(`${s}\n`); };
  const note = (s: string): void => { process.stderr.write(`${s}\n`); };
  switch (cmd.verb) {
    case 'up': {
      const r = await labUp(cmd);
      for (const h of r.hosts) out(hostLine(h));
      note(`registry ${r.registry.address} user ${r.registry.user} password ${r.registry.password}${r.registry.image ? ` (holds ${r.registry.image})` : ''}`);
      return 0;
    }
    case 'status': {
      const r = await labStatus(cmd.dir);
      for (const h of r.hosts) out(`${hostLine(h)} ${h.state}${h.partitioned ? ' partitioned' : ''}`);
      if (r.registry) out(`registry ${r.registry.address} ${r.registry.user} ${r.registry.password}`);
      return 0;
    }
    case 'kill':
      await labKill(cmd.dir, cmd.host);
      return 0;
    case 'start': {
      out(hostLine(await labStart(cmd.dir, cmd.host)));
      return 0;
    }
    case 'partition':
    case 'heal':
      await labPartition(cmd.dir, cmd.host, cmd.verb === 'partition');
      return 0;
    case 'down':
      for (const n of await labDown(cmd.dir)) note(n);
      return 0;
  }
}
