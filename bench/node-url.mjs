// The same mix through Node's WHATWG URL (ada, C++) plus an origin check: a reference point for
// detour-bench, not an equivalent (no allowlist, no IDNA refusal, no loop check).
const mix = [
  "/", "/dashboard", "/d/abc-123/overview?orgId=1&from=now-6h&to=now", "/wiki/Main_Page#History",
  "https://app.example.com/orders?id=42", "https://grafana.corp.example/d/xyz?var-host=web-1",
  "https://app.example.com/search?next=https://other.example/&q=a%20b", "http://localhost:8080/callback",
  "//evil.example/", "/\\evil.example", "https://app.example.com@evil.example/", "javascript:alert(1)",
  "https://evilcorp.example/", "https://app.example.com:8443/", "/oauth2/start?rd=/", "/\t/evil.example",
];
const base = "https://auth.example.com/";
const seconds = Number(process.argv[2] ?? 2);
let evaluated = 0, allowed = 0;
const start = process.hrtime.bigint();
const deadline = start + BigInt(Math.round(seconds * 1e9));
while (process.hrtime.bigint() < deadline) {
  for (let i = 0; i < 1000; i++) {
    for (const target of mix) {
      try { const url = new URL(target, base); if (url.host === "app.example.com") allowed++; } catch {}
    }
  }
  evaluated += 1000 * mix.length;
}
const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
console.log(`node    URL parses per second (1 core):          ${Math.round(evaluated / elapsed)}  (${evaluated} in ${elapsed.toFixed(2)} s)`);
