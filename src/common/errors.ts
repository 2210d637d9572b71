// Errors are values with a kind; the API edge maps each kind to an HTTP status
// once (api/http-errors.ts). Messages follow Docker's texts so that the CLI
// prints what a Swarm user already knows.

export type ErrorKind =
  | 'invalid'      // 400: bad input
  | 'precondition' // 400: valid input, wrong state (gRPC FailedPrecondition)
  | 'not_found'    // 404
  | 'forbidden'    // 403: not allowed here (Docker's errdefs.Forbidden, gRPC PermissionDenied)
  | 'conflict'     // 409: name clash, already exists
  | 'unauthorized' // 401: a wrong unlock key (Docker's errdefs.Unauthorized)
  | 'unavailable'  // 503: not a manager, not in a swarm, store unreachable
  | 'sequence'     // 500: stale Version.Index (Docker answers 500 "update out of sequence")
  | 'internal';    // 500

export const ERROR_KINDS: readonly ErrorKind[] = ['invalid', 'precondition', 'not_found', 'forbidden', 'conflict', 'unauthorized', 'unavailable', 'sequence', 'internal'];

export class ShoalError extends Error {
  constructor(readonly kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ShoalError';
  }
}

export const invalid = (msg: string): ShoalError => new ShoalError('invalid', msg);
export const precondition = (msg: string): ShoalError => new ShoalError('precondition', msg);
export const notFound = (msg: string): ShoalError => new ShoalError('not_found', msg);
export const conflict = (msg: string): ShoalError => new ShoalError('conflict', msg);
export const forbidden = (msg: string): ShoalError => new ShoalError('forbidden', msg);
export const unavailable = (msg: string): ShoalError => new ShoalError('unavailable', msg);
export const unauthorized = (msg: string): ShoalError => new ShoalError('unauthorized', msg);
export const internal = (msg: string, cause?: unknown): ShoalError => new ShoalError('internal', msg, { cause });

export const outOfSequence = (): ShoalError =>
  new ShoalError('sequence', 'rpc error: code = Unknown desc = update out of sequence');

export const NOT_A_MANAGER =
  'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.';
export const ALREADY_IN_SWARM =
  'This node is already part of a swarm. Use "docker swarm leave" to leave this swarm and join another one.';
// dockerd's words when a join is not done within its bound (20 s).
export const JOIN_TIMEOUT = 'Timeout was reached before node joined. The attempt to join the swarm will continue in the background. Use the "docker info" command to see the current swarm status of your node.';
// moby's errSwarmNotManager (e.g. `swarm init --force-new-cluster` on a worker).
export const SWARM_NOT_MANAGER =
  "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.";
export const NOT_IN_SWARM = 'This node is not part of a swarm';
export const LEAVE_LAST_MANAGER =
  'You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message.';

export function isShoalError(e: unknown): e is ShoalError {
  return e instanceof ShoalError;
}
