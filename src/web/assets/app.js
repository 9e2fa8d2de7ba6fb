// Hearth web app: the router. Every page lives in its own module; all are plain JavaScript
// modules served by the device itself (no build step, no inline script: the CSP forbids it).
import { h, api, render, session, prefs, main } from "./core.js";
import { wizardWelcome, wizardNetwork, wizardLibraries, wizardDone } from "./wizard.js";
import { loginPage, profilesPage, invitePage } from "./account.js";
import { homePage, libraryPage, itemPage, searchPage } from "./browse.js";
import { playerPage } from "./player.js";
import { usersPage, devicesPage, networkPage, securityPage, themeToggle } from "./settings.js";
import { backupsPage, kitPage } from "./backup.js";
import { restrictionsPage } from "./restrictions.js";
import { librariesPage, updatesPage, dlnaPage, privacyPage, systemPage, playbackPage } from "./admin.js";

const nav = document.getElementById("nav");

// Dark unless this browser chose light.
function setTheme() {
  document.documentElement.dataset.theme = prefs.get("theme", "dark") === "light" ? "light" : "dark";
}

function errorCard(title, message) {
  render(h("section", { class: "card" }, h("h1", {}, title), h("p", {}, message)));
}

async function route() {
  const status = await api("GET", "/api/v1/setup");
  if (!status.ok) { errorCard("Hearth is not answering", status.error.message); return; }
  session.status = status.data;
  document.getElementById("brand-name").textContent = status.data.server_name;
  const hash = location.hash || "#/";
  if (!status.data.claimed) {
    nav.hidden = true;
    document.title = "Set up Hearth";
    wizardWelcome(status.data);
    return;
  }
  if (hash.startsWith("#/invite/")) { nav.hidden = true; invitePage(hash.slice("#/invite/".length)); return; }
  const me = await api("GET", "/api/v1/me");
  if (me.status === 401) {
    nav.hidden = true;
    document.title = "Sign in · " + status.data.server_name;
    loginPage(status.data, () => { if (location.hash === "#/" || !location.hash) route(); else location.hash = "#/"; });
    return;
  }
  if (!me.ok) { errorCard("Something went wrong", me.error.message); return; }
  session.me = me.data;
  nav.hidden = false;
  const role = me.data.user.role;
  document.getElementById("nav-profiles").hidden = !(role === "owner" || role === "managed" || role === "guest");
  document.getElementById("nav-settings").setAttribute("href", role === "owner" ? "#/settings/users" : "#/settings/devices");
  document.getElementById("who").textContent = me.data.user.username;
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  for (const a of nav.querySelectorAll("a")) {
    const target = a.getAttribute("href");
    const here = target.startsWith("#/settings/") ? path.startsWith("#/settings/") : path === target;
    if (here) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  document.title = status.data.server_name;
  const m = path.match(/^#\/library\/(\d+)(?:\/(.*))?$/);
  if (m) return libraryPage(m[1], m[2]);
  if (path.startsWith("#/item/")) return itemPage(path.slice("#/item/".length));
  if (path.startsWith("#/play/")) return playerPage(path.slice("#/play/".length), params.get("from") === "start");
  if (path === "#/search") return searchPage(params.get("q") || "");
  const owner = role === "owner";
  const ru = path.match(/^#\/settings\/users\/(\d+)$/);
  if (ru) return owner ? restrictionsPage(ru[1]) : homePage();
  switch (path) {
    case "#/setup/network": return wizardNetwork();
    case "#/setup/libraries": return wizardLibraries();
    case "#/setup/done": return wizardDone();
    case "#/profiles": return profilesPage();
    case "#/settings/devices": return devicesPage();
    case "#/settings/security": return securityPage();
    case "#/settings/privacy": return privacyPage();
    case "#/settings/users": return owner ? usersPage() : homePage();
    case "#/settings/network": return owner ? networkPage() : homePage();
    case "#/settings/libraries": return owner ? librariesPage() : homePage();
    case "#/settings/updates": return owner ? updatesPage() : homePage();
    case "#/settings/dlna": return owner ? dlnaPage() : homePage();
    case "#/settings/playback": return owner ? playbackPage() : homePage();
    case "#/settings/system": return owner ? systemPage() : homePage();
    case "#/settings/backups": return owner ? backupsPage() : homePage();
    case "#/settings/backups/kit": return owner ? kitPage() : homePage();
    default: return homePage();
  }
}

// Arrow keys move focus to the nearest control in that direction (TV remotes send arrows).
// Components that handle arrows themselves (grid, shelves, PIN pad, player) prevent default.
const FOCUSABLE = "a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea, [tabindex='0'], summary";
function spatial(e) {
  const dir = { ArrowUp: [0, -1], ArrowDown: [0, 1], ArrowLeft: [-1, 0], ArrowRight: [1, 0] }[e.key];
  if (!dir || e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey) return;
  const from = document.activeElement;
  if (from && from.closest("input, select, textarea, video, audio, dialog")) return;
  const a = from && from !== document.body ? from.getBoundingClientRect() : { left: 0, top: 0, width: 0, height: 0 };
  const ax = a.left + a.width / 2, ay = a.top + a.height / 2;
  let best = null, bestScore = Infinity;
  for (const el of document.querySelectorAll(FOCUSABLE)) {
    if (el === from || el.tabIndex < 0 || el.closest("[hidden]")) continue;
    const r = el.getBoundingClientRect();
    if (!r.width || !r.height) continue;
    const dx = r.left + r.width / 2 - ax, dy = r.top + r.height / 2 - ay;
    const along = dx * dir[0] + dy * dir[1];
    if (along <= 1) continue;
    const across = Math.abs(dx * dir[1]) + Math.abs(dy * dir[0]);
    const score = along + across * 2;
    if (score < bestScore) { bestScore = score; best = el; }
  }
  if (best) { e.preventDefault(); best.focus(); best.scrollIntoView({ block: "nearest", inline: "nearest" }); }
}

setTheme();
document.getElementById("theme-slot").replaceWith(themeToggle());
document.getElementById("signout").addEventListener("click", async () => {
  await api("POST", "/api/v1/auth/logout");
  session.me = null;
  if (location.hash === "#/" || !location.hash) route(); else location.hash = "#/";
});
window.addEventListener("hashchange", route);
window.addEventListener("keydown", spatial);
// "/" jumps to search, as in most media apps.
document.addEventListener("keydown", (e) => {
  if (e.key === "/" && !e.target.closest("input, textarea, select") && session.me) { e.preventDefault(); location.hash = "#/search"; }
});
main.addEventListener("click", (e) => { if (e.target.closest("a[href='#/']") && location.hash === "#/") route(); });
route();
