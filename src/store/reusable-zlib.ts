import { constants, type DeflateRaw, type InflateRaw } from 'node:zlib';

// One zlib stream kept for many small values, reset between them. Node's
// one-shot calls (deflateRawSync, inflateRawSync) make a zlib stream per call:
// its state allocated, the dictionary set, the stream closed and freed. For a
// task of a few hundred bytes that was most of the cost: a leader's create of
// 30,000 tasks spent 2.6 of its 18 busy seconds in zlib, packing each value
// 34 µs (bench/value-packing.ts has the figures side by side).
//
// Node has no public way to run a stream synchronously more than once (its
// sync path closes the stream after one value), so this drives the stream's
// native handle as Node's own sync path does, through two of its underscore
// fields. `open` checks they are there; where they are not (another Node),
// `run` answers undefined and the caller uses the one-shot call. A value whose
// output does not fit the buffer goes the same way.

interface NativeHandle {
  writeSync(flush: number, input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): void;
}
// The stream object as Node builds it: its handle and the two counts the
// handle leaves after a write (output space left, input left).
interface Internals { _handle?: NativeHandle | null; _writeState?: Uint32Array }

interface Engine { stream: DeflateRaw | InflateRaw; handle: NativeHandle; state: Uint32Array }

function open(stream: DeflateRaw | InflateRaw): Engine | undefined {
  const inner = stream as unknown as Internals;
  const handle = inner._handle, state = inner._writeState;
  if (!handle || typeof handle.writeSync !== 'function' || !(state instanceof Uint32Array) || state.length < 2) {
    stream.destroy();
    return undefined;
  }
  // A data error destroys the stream, and the stream then emits it: heard
  // here, it is reported through `errored` (below), never unhandled.
  stream.on('error', () => {});
  return { stream, handle, state };
}

export class ReusableZlib {
  private engine?: Engine;
  private unsupported = false;
  private readonly out: Buffer;

  // `make` builds the stream with its options (dictionary, window); `outBytes`
  // is the most output one value may have on this path.
  constructor(private readonly make: () => DeflateRaw | InflateRaw, outBytes: number) {
    this.out = Buffer.allocUnsafeSlow(outBytes);
  }

  // `input` run to its end; `read` gets the output while it is valid (the
  // buffer is reused by the next call). Undefined when this path cannot take
  // the value (see above); throws the stream's error for input that is not
  // valid (a corrupt packed value), and the next call starts a new stream.
  run<T>(input: Buffer, read: (out: Buffer, length: number) => T): T | undefined {
    if (this.unsupported) return undefined;
    // A stream that failed (at a write or a reset) is closed: never written again.
    if (this.engine?.stream.destroyed) this.engine = undefined;
    const e = this.engine ??= open(this.make());
    if (!e) { this.unsupported = true; return undefined; }
    e.handle.writeSync(constants.Z_FINISH, input, 0, input.length, this.out, 0, this.out.length);
    if (e.stream.destroyed) {
      this.engine = undefined;
      throw e.stream.errored ?? new Error('zlib failed');
    }
    const outLeft = e.state[0]!, inLeft = e.state[1]!;
    e.stream.reset();
    // Output filled the buffer (maybe more to come), or input left over: the
    // one-shot call decides.
    if (outLeft === 0 || inLeft !== 0) return undefined;
    return read(this.out, this.out.length - outLeft);
  }
}
