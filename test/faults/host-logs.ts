// What a failed fault run prints of its hosts' logs (CI keeps only the run's
// output). Pure over the logs' text; run.ts reads the files.

// A pino line's time (ISO, so it sorts as text); '' if it has none.
const timeOf = (line: string): string => /"time":"([^"]+)"/.exec(line)?.[1] ?? '';

// Every line, on any host, that names one of `ids`, in time order across
// the hosts, the last `last` of them, each cut to 400 characters.
export function linesNaming(logs: Array<[host: string, text: string]>, ids: string[], last = 30): string {
  const out: Array<{ at: string; line: string }> = [];
  for (const [host, text] of logs) {
    for (const x of text.split('\n')) {
      if (ids.some((id) => x.includes(id))) out.push({ at: timeOf(x), line: `    ${host}: ${x.slice(0, 400)}` });
    }
  }
  return out.sort((a, b) => a.at.localeCompare(b.at)).slice(-last).map((o) => o.line).join('\n') || '    (none)';
}

// A manager's store and etcd-supervisor lines: how its mirror followed etcd.
export function storeLines(text: string, last = 40): string {
  return text.split('\n').filter((x) => /"component":"(store|etcd)/.test(x)).slice(-last).map((x) => `    ${x.slice(0, 400)}`).join('\n');
}
