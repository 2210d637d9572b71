import { randomInt } from 'node:crypto';

// Docker names unnamed services adjective_surname; a short list is enough to
// make clashes rare, and a clash is retried by the caller.
const LEFT = ['admiring', 'brave', 'clever', 'dazzling', 'eager', 'festive', 'gallant', 'happy', 'jolly', 'keen', 'lucid', 'modest', 'nifty', 'optimistic', 'quirky', 'relaxed', 'sharp', 'trusting', 'vibrant', 'wizardly', 'youthful', 'zealous'];
const RIGHT = ['albattani', 'babbage', 'curie', 'darwin', 'euclid', 'fermi', 'galileo', 'hopper', 'hypatia', 'kepler', 'lovelace', 'meitner', 'newton', 'noether', 'pascal', 'ritchie', 'shannon', 'tesla', 'turing', 'wozniak'];

export function randomName(): string {
  return `${LEFT[randomInt(LEFT.length)]}_${RIGHT[randomInt(RIGHT.length)]}`;
}

// SwarmKit's validateAnnotations: a DNS label.
const NAME_RE = /^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$/;
export function isValidObjectName(name: string): boolean {
  return name.length <= 63 && NAME_RE.test(name);
}
