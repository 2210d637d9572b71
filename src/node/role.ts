// Which role this node should switch to now (pure: state in, decision out).
//
// A promotion or demotion reaches a node by several roads that do not keep
// each other's order: its own mirror's events (a manager), its dispatcher
// session (any node, through whichever manager leads), and the certificate a
// manager's CA signs from its own mirror. Each says which version of the
// node object (Version.Index: the key's etcd mod revision, one order for the
// whole cluster) it read the role from, so the newest decision wins whatever
// arrives last: a demotion's notice, or a worker certificate signed by a
// manager that had not seen the promotion yet, cannot undo a later promotion.
import type { NodeRole } from '../model/types';

// A role as the store held it at one version of the node object. Version 0:
// not known (a peer that does not send versions); any versioned notice is newer.
export interface RoleNotice { role: NodeRole; version: number }

// The newer of two notices; an equal version changes nothing (same object).
export function newerNotice(known: RoleNotice | undefined, notice: RoleNotice): RoleNotice {
  if (!known) return notice;
  return notice.version > known.version ? notice : known;
}

export type RoleStep =
  | { kind: 'stay' }                 // this node runs the role last decided (or none is known)
  | { kind: 'renew'; want: NodeRole } // a certificate signed from at least that version is needed first
  | { kind: 'switch'; to: NodeRole }; // the certificate in hand carries it: become it

// `cert`: the role and node version of the certificate the last renewal of
// this attempt brought (undefined before one). Only a certificate signed
// from the desired version or a later one makes the switch: an older one was
// signed by a CA behind the decision, and is renewed again.
export function decideRoleStep(s: { running: NodeRole; desired?: RoleNotice; cert?: RoleNotice }): RoleStep {
  const desired = s.cert ? newerNotice(s.desired, s.cert) : s.desired;
  if (!desired || desired.role === s.running) return { kind: 'stay' };
  if (s.cert && s.cert.role === desired.role && s.cert.version >= desired.version) return { kind: 'switch', to: desired.role };
  return { kind: 'renew', want: desired.role };
}
