// A response body already serialised as JSON (writeJson sends it as it is):
// for answers built from parts kept between calls (routes/node-list.ts).
export class JsonText {
  constructor(readonly text: string) {}
}
