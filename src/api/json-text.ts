// A response body already serialised as JSON, kept as the bytes writeJson
// sends (the trailing newline of every answer included): for answers built
// from parts kept between calls (routes/node-list.ts) and sent again as they
// are. Encoding 7 MB of JSON for each `node ls` of 5,000 nodes cost more than
// building it.
export class JsonText {
  readonly bytes: Buffer;
  constructor(text: string) { this.bytes = Buffer.from(`${text}\n`); }
  get text(): string { return this.bytes.toString('utf8', 0, this.bytes.length - 1); }
}
