import type { Labels } from '../../model/types';

// The placeholders SwarmKit expands in a container's hostname, env values and
// mount sources/targets (swarmkit template/context.go): `{{.Service.Name}}`,
// `{{.Task.Slot}}`, `{{.Node.Hostname}}`... Go's text/template is far larger;
// this covers what Docker documents for `docker service create`: field paths,
// `index` on the label maps, and the `{{-`/`-}}` trim markers.
export interface TemplateContext {
  Service: { ID: string; Name: string; Labels: Labels };
  Node: { ID: string; Hostname: string; Platform: { Architecture: string; OS: string } };
  Task: { ID: string; Name: string; Slot: string };
}

const ACTION = /\{\{(-\s)?\s*(.*?)\s*(\s-)?\}\}/gs;

export class TemplateError extends Error {
  constructor(message: string) { super(`template: expansion: ${message}`); }
}

export function expandTemplate(text: string, ctx: TemplateContext): string {
  if (!text.includes('{{')) return text;
  let out = '';
  let last = 0;
  let trimNext = false;
  for (const m of text.matchAll(ACTION)) {
    let literal = text.slice(last, m.index);
    if (trimNext) literal = literal.replace(/^\s+/, '');
    if (m[1]) literal = literal.replace(/\s+$/, '');
    out += literal + evaluate(m[2]!, ctx);
    trimNext = !!m[3];
    last = m.index! + m[0].length;
  }
  let rest = text.slice(last);
  if (trimNext) rest = rest.replace(/^\s+/, '');
  if (rest.includes('{{')) throw new TemplateError(`unclosed action in ${JSON.stringify(text)}`);
  return out + rest;
}

function evaluate(expr: string, ctx: TemplateContext): string {
  const index = /^index\s+(\.[\w.]+)\s+"((?:[^"\\]|\\.)*)"$/.exec(expr);
  if (index) {
    const map = lookup(index[1]!, ctx);
    if (!map || typeof map !== 'object') throw new TemplateError(`can't index item of type ${typeof map} in {{${expr}}}`);
    const v = (map as Record<string, unknown>)[JSON.parse(`"${index[2]!}"`) as string];
    return v === undefined ? '' : String(v);
  }
  if (!/^\.[\w.]*$/.test(expr)) throw new TemplateError(`unsupported action {{${expr}}}`);
  const v = lookup(expr, ctx);
  if (v === undefined) return '<no value>'; // Go prints this for a missing map key
  if (typeof v === 'object') throw new TemplateError(`{{${expr}}} is not a value`);
  return String(v);
}

// Structs fail on unknown fields (Go does); maps (the Labels) yield undefined.
function lookup(path: string, ctx: TemplateContext): unknown {
  let cur: unknown = ctx;
  let inMap = false;
  for (const part of path.split('.').slice(1)) {
    if (part === '') continue;
    if (cur === null || typeof cur !== 'object') throw new TemplateError(`can't evaluate field ${part} in {{${path}}}`);
    const obj = cur as Record<string, unknown>;
    if (!inMap && !(part in obj)) throw new TemplateError(`can't evaluate field ${part} in {{${path}}}`);
    inMap = part === 'Labels';
    cur = obj[part];
  }
  return cur;
}
