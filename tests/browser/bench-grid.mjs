// Claims a fresh server through the API, adds LIB_DIR as a library, waits for the scan, then
// opens the library page in Chromium and prints the grid's render numbers. See ./bench.
import { chromium } from "playwright-core";

const BASE = process.env.HEARTH_URL;
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox", "--disable-gpu"] });
const ctx = await browser.newContext({ viewport: { width: 1920, height: 1080 } });
const page = await ctx.newPage();
await page.goto(BASE);
const call = (method, path, body) => page.evaluate(async ([m, p, b]) => {
  const r = await fetch(p, { method: m, headers: b ? { "Content-Type": "application/json" } : {}, body: b ? JSON.stringify(b) : undefined });
  return { status: r.status, body: await r.json().catch(() => null) };
}, [method, path, body]);
const claim = await call("POST", "/api/v1/setup/claim", { setup_code: process.env.SETUP_CODE, server_name: "Bench",
  owner: { username: "bench", password: "kettle lantern orchard" }, device: { name: "bench", platform: "web", client_id: "bench" } });
if (claim.status !== 201) throw new Error("claim failed: " + JSON.stringify(claim));
const lib = await call("POST", "/api/v1/libraries", { name: "Films", kind: "movies", folders: [process.env.LIB_DIR] });
const t0 = Date.now();
for (;;) {
  const s = await call("GET", "/api/v1/libraries/" + lib.body.id + "/scan");
  if (!s.body.progress || !s.body.progress.running) break;
  await page.waitForTimeout(500);
}
const items = (await call("GET", "/api/v1/libraries")).body[0].items;
console.log(`scanned ${items} items in ${((Date.now() - t0) / 1000).toFixed(1)} s (debug build)`);
const start = Date.now();
await page.goto(BASE + "/#/library/" + lib.body.id);
await page.waitForFunction(() => window.hearthPerf && window.hearthPerf.libraryLoadedAt, null, { timeout: 600000 });
const perf = await page.evaluate(() => window.hearthPerf);
console.log(`library page: ${perf.libraryItems} items loaded in ${((Date.now() - start) / 1000).toFixed(1)} s (40 pages of 500)`);
console.log(`first page drawn ${perf.firstPageSinceDataMs.toFixed(1)} ms after its data arrived (grid ${perf.firstPageRenderMs.toFixed(1)} ms); slowest page ${perf.maxPageSinceDataMs.toFixed(1)} ms`);
const jump = await page.evaluate(async () => {
  const t = performance.now();
  document.querySelector('button[aria-label="Titles starting with W"]').click();
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  return { ms: performance.now() - t, title: document.activeElement.querySelector(".title").textContent, nodes: document.querySelectorAll(".vgrid .cell").length };
});
console.log(`alphabet jump to W: ${jump.ms.toFixed(1)} ms to the next frame, focus on "${jump.title}", ${jump.nodes} cards in the DOM`);
await browser.close();
