import { StringDecoder } from 'node:string_decoder';

// Splits a byte stream into lines. Chunks can end mid-line and mid-character
// (a socket cuts where it likes): bytes are decoded with a StringDecoder, so a
// multi-byte UTF-8 character split across two chunks comes out whole.
export class LineSplitter {
  private readonly decoder = new StringDecoder('utf8');
  private rest = '';

  // The complete lines in `chunk` (without their newline; blank ones dropped).
  push(chunk: Buffer | string): string[] {
    const text = this.rest + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk));
    const lines = text.split('\n');
    this.rest = lines.pop()!;
    return lines.filter((l) => l.trim() !== '');
  }

  // What is left once the stream ended (a last line without newline).
  end(): string[] {
    const last = (this.rest + this.decoder.end()).trim();
    this.rest = '';
    return last ? [last] : [];
  }
}

// The engine streams newline-delimited JSON (events, pull progress, import):
// each complete line (trimmed) is handed on as it arrives, the last one at the end.
export function onJsonLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  const splitter = new LineSplitter();
  stream.on('data', (chunk: Buffer | string) => { for (const l of splitter.push(chunk)) onLine(l.trim()); });
  stream.on('end', () => { for (const l of splitter.end()) onLine(l); });
}
