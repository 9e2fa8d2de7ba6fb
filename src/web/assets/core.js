// Shared helpers for every page: building elements, talking to the API, forms, formats.
// Plain JavaScript modules, no build step; the CSP forbids inline script and style.

export const main = document.getElementById("main");

// The signed-in user (GET /api/v1/me) and server status, set by the router.
export const session = { me: null, status: null };

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export async function api(method, path, body, raw) {
  const opts = { method, credentials: "same-origin", headers: {} };
  if (raw !== undefined) {
    opts.headers["Content-Type"] = "application/octet-stream";
    opts.body = raw;
  } else if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, opts);
  } catch (e) {
    return { ok: false, status: 0, error: { code: "offline", message: "Hearth cannot be reached. Check that the device is on and connected." } };
  }
  let data = null;
  const text = await resp.text();
  // When the body had fully arrived: pages measure their render time from here.
  const receivedAt = performance.now();
  if (text) {
    try { data = JSON.parse(text); } catch (e) { data = null; }
  }
  const error = resp.ok ? null : (data && data.error) || { code: "http_" + resp.status, message: "The server answered " + resp.status + "." };
  return { ok: resp.ok, status: resp.status, data, error, receivedAt };
}

export function listOf(r) {
  if (!r.ok) return [];
  return Array.isArray(r.data) ? r.data : (r.data && (r.data.libraries || r.data.items)) || [];
}

export function thisDevice() {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox" : /Chrome\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : "Browser";
  const os = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Mac OS/.test(ua) ? "macOS" : /Windows/.test(ua) ? "Windows" : /Linux/.test(ua) ? "Linux" : "";
  let id = localStorage.getItem("hearth_client_id");
  if (!id) {
    id = (crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2));
    localStorage.setItem("hearth_client_id", id);
  }
  return { name: os ? browser + " on " + os : browser, platform: "web", client_id: id };
}

// Page teardown: a page registers what to stop (timers, players, listeners) together with
// one of its elements; once a render leaves that element out of the document, it runs.
let leaving = [];
export function onLeave(fn, node) { leaving.push({ fn, node }); }
function leave() {
  const gone = leaving.filter((l) => !l.node.isConnected);
  leaving = leaving.filter((l) => l.node.isConnected);
  for (const l of gone) { try { l.fn(); } catch (e) { /* a failed cleanup must not block navigation */ } }
}

export function render(...nodes) {
  main.replaceChildren(...nodes);
  leave();
  main.classList.toggle("wide", nodes.some((n) => n && n.classList && n.classList.contains("wide")));
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
  window.scrollTo(0, 0);
}

export function field(id, label, attrs, hint) {
  const input = h("input", Object.assign({ id, name: id, type: "text" }, attrs, hint ? { "aria-describedby": id + "-hint" } : {}));
  return { input, node: h("div", {}, h("label", { for: id }, label), hint ? h("span", { class: "hint", id: id + "-hint" }, hint) : null, input) };
}

export function errorBox(id) {
  return h("p", { class: "error", id, role: "alert", "aria-live": "assertive" });
}

export function showError(box, err, input) {
  box.textContent = err ? err.message : "";
  if (input) input.setAttribute("aria-invalid", err ? "true" : "false");
  if (err && input) input.focus();
}

export function busy(button, on) {
  button.disabled = on;
  button.setAttribute("aria-busy", on ? "true" : "false");
}

export function stepsBar(steps, n) {
  return h("ol", { class: "steps", "aria-label": "Step " + (n + 1) + " of " + steps.length + ": " + steps[n] },
    steps.map((s, i) => h("li", { class: i < n ? "done" : i === n ? "now" : "", title: s })));
}

export function formCard(title, intro, fields, actions, onsubmit, bar) {
  const form = h("form", { novalidate: true, onsubmit: (e) => { e.preventDefault(); onsubmit(); } });
  form.append(...fields, h("div", { class: "actions" }, ...actions));
  return h("section", { class: "card narrow", "aria-labelledby": "title" },
    bar || null,
    h("h1", { id: "title" }, title),
    intro ? h("p", { class: "muted" }, intro) : null,
    form);
}

export function radio(name, value, label, hint, checked) {
  return h("label", { class: "choice" },
    h("input", { type: "radio", name, value, checked }), h("span", {}, label, hint ? h("span", { class: "hint" }, hint) : null));
}

export function checkbox(id, label, checked, hint) {
  return h("label", { class: "choice", for: id }, h("input", { type: "checkbox", id, name: id, checked }),
    h("span", {}, label, hint ? h("span", { class: "hint" }, hint) : null));
}

// A status line that announces saves to screen readers.
export function statusLine(id) {
  return h("p", { class: "hint status", role: "status", id });
}

export function errorPage(title, err) {
  const box = errorBox("page-error");
  render(h("section", { class: "card" }, h("h1", {}, title), box));
  showError(box, err);
}

// ---------- formats ----------

export function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return (i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)) + " " + units[i];
}

export function duration(ms) {
  if (!ms && ms !== 0) return "";
  const s = Math.round(ms / 1000);
  const hrs = Math.floor(s / 3600);
  const min = Math.floor((s % 3600) / 60);
  if (hrs) return hrs + " h " + min + " min";
  if (min) return min + " min";
  return s + " s";
}

export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  const hrs = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(hrs ? 2 : 1, "0");
  const ss = String(s % 60).padStart(2, "0");
  return (hrs ? hrs + ":" : "") + mm + ":" + ss;
}

export function when(secs) {
  if (!secs) return "never";
  return new Date(secs * 1000).toLocaleString();
}

export function ago(secs) {
  if (!secs) return "never";
  const d = Math.round(Date.now() / 1000 - secs);
  if (d < 60) return "just now";
  if (d < 3600) return Math.round(d / 60) + " min ago";
  if (d < 86400) return Math.round(d / 3600) + " h ago";
  return new Date(secs * 1000).toLocaleDateString();
}

export function ratingText(r) {
  if (!r) return null;
  return r.value || r.raw || null;
}

export function kindName(kind) {
  return { movies: "Films", shows: "TV shows", music: "Music", photos: "Photos", videos: "Other videos" }[kind] || kind;
}

export function roleName(role) {
  return { owner: "Owner", managed: "Managed profile", guest: "Guest", friend: "Friend" }[role] || role;
}

// A title's picture (its poster, a frame of the film, or the photo) `w` pixels wide.
export function artUrl(id, w) { return "/api/v1/items/" + id + "/picture?w=" + (w || 320); }

// Poster artwork, or a lettered placeholder when there is none (or it fails to load).
export function poster(item, cls) {
  const letter = h("span", { class: "placeholder", "aria-hidden": "true" }, (item.title || item.name || "?").slice(0, 1).toUpperCase());
  const box = h("span", { class: "art " + (cls || "") }, letter);
  const id = item.has_picture || item.has_artwork ? item.id : item.artwork_item;
  if (id) {
    const w = cls === "big" ? 480 : 320;
    const img = h("img", { src: artUrl(id, w), srcset: artUrl(id, w) + " 1x, " + artUrl(id, w * 2) + " 2x", alt: "", loading: "lazy", decoding: "async" });
    img.addEventListener("error", () => img.remove());
    box.append(img);
  }
  return box;
}

export function progressBar(value, max, label) {
  const p = h("progress", { max: String(max || 1), "aria-label": label });
  if (value !== null && value !== undefined) p.value = value;
  return p;
}

export function isOwner() { return !!(session.me && session.me.user.role === "owner"); }

// Preferences kept in this browser only.
export const prefs = {
  get(k, d) { try { const v = localStorage.getItem("hearth_" + k); return v === null ? d : JSON.parse(v); } catch (e) { return d; } },
  set(k, v) { try { localStorage.setItem("hearth_" + k, JSON.stringify(v)); } catch (e) { /* private mode: keep defaults */ } },
};

// Small line icons (no icon font: nothing is loaded from outside, and system fonts lack
// some media symbols). Decorative: the button around them carries the name.
const ICONS = {
  play: "M8 5v14l11-7z", pause: "M7 5h4v14H7zM13 5h4v14h-4z", prev: "M6 5h2v14H6zM20 5v14L9 12z",
  next: "M16 5h2v14h-2zM4 5v14l11-7z", close: "M6 6l12 12M18 6L6 18",
};
export function icon(name) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "icon icon-" + name);
  const p = document.createElementNS("http://www.w3.org/2000/svg", "path");
  p.setAttribute("d", ICONS[name]);
  svg.append(p);
  return svg;
}
