// Reads JSON lines {"input": "...", "base": "..."} and answers, line for line, with what Node's WHATWG URL
// (the same parser browsers implement) makes of them: {"href": "...", "protocol": "...", "host": "..."}
// or {"error": true}. Used by Detour's differential tests.
import { createInterface } from "node:readline";

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
const out = [];
for await (const line of lines) {
  const { input, base } = JSON.parse(line);
  try {
    const url = new URL(input, base);
    out.push(JSON.stringify({ href: url.href, protocol: url.protocol, host: url.host }));
  } catch {
    out.push(JSON.stringify({ error: true }));
  }
}
process.stdout.write(out.join("\n") + (out.length ? "\n" : ""));
