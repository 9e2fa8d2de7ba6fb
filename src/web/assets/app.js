// Hearth web app: setup wizard, sign-in, home and devices.
// Plain JavaScript, no build step, no inline script (the CSP forbids it).
"use strict";

const main = document.getElementById("main");
const nav = document.getElementById("nav");

// ---------- small helpers ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function api(method, path, body) {
  const opts = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
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
  if (text) {
    try { data = JSON.parse(text); } catch (e) { data = null; }
  }
  const error = resp.ok ? null : (data && data.error) || { code: "http_" + resp.status, message: "The server answered " + resp.status + "." };
  return { ok: resp.ok, status: resp.status, data, error };
}

function thisDevice() {
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

function render(...nodes) {
  main.replaceChildren(...nodes);
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
}

function field(id, label, attrs, hint) {
  const input = h("input", Object.assign({ id, name: id, type: "text" }, attrs, hint ? { "aria-describedby": id + "-hint" } : {}));
  return { input, node: h("div", {}, h("label", { for: id }, label), hint ? h("span", { class: "hint", id: id + "-hint" }, hint) : null, input) };
}

function errorBox(id) {
  return h("p", { class: "error", id, role: "alert", "aria-live": "assertive" });
}

function showError(box, err, input) {
  box.textContent = err ? err.message : "";
  if (input) input.setAttribute("aria-invalid", err ? "true" : "false");
  if (err && input) input.focus();
}

function busy(button, on) {
  button.disabled = on;
  button.setAttribute("aria-busy", on ? "true" : "false");
}

function formCard(title, intro, fields, actions, onsubmit, step) {
  const form = h("form", { novalidate: true, onsubmit: (e) => { e.preventDefault(); onsubmit(); } });
  form.append(...fields, h("div", { class: "actions" }, ...actions));
  return h("section", { class: "card", "aria-labelledby": "title" },
    step !== undefined ? stepsBar(step) : null,
    h("h1", { id: "title" }, title),
    intro ? h("p", { class: "muted" }, intro) : null,
    form);
}

// ---------- setup wizard ----------

const STEPS = ["Welcome", "Setup code", "Owner", "Name", "Network", "Libraries", "Done"];
const wizard = { code: "", username: "", password: "", serverName: "" };

function stepsBar(n) {
  return h("ol", { class: "steps", "aria-label": "Step " + (n + 1) + " of " + STEPS.length + ": " + STEPS[n] },
    STEPS.map((s, i) => h("li", { class: i < n ? "done" : i === n ? "now" : "", title: s })));
}

function wizardWelcome(status) {
  const start = h("button", { class: "primary", type: "submit" }, "Get started");
  render(formCard("Welcome to your Hearth",
    "This device will keep your household's films, shows, music and photos at home. Setting it up takes about a minute: you will need the setup code shown on the device's screen or console.",
    [h("p", {}, "Version " + status.version + ".")],
    [start], () => wizardCode(), 0));
}

function wizardCode() {
  const f = field("setup-code", "Setup code", { class: "code", autocomplete: "one-time-code", autocapitalize: "characters", spellcheck: "false", placeholder: "XXXX-XXXX-XXXX", value: wizard.code, maxlength: "20", required: true },
    "Printed on the device's console when it starts (run `hearth setup-code` there to see it again).");
  const err = errorBox("code-error");
  const next = h("button", { class: "primary", type: "submit" }, "Continue");
  const back = h("button", { type: "button", onclick: () => wizardWelcome(window.hearthStatus) }, "Back");
  render(formCard("Enter the setup code", "The code proves you have the device in your hands, so nobody else on your network can claim it.",
    [f.node, err], [next, back], async () => {
      const code = f.input.value.trim();
      if (code.replace(/[\s-]/g, "").length !== 12) {
        showError(err, { message: "The setup code has 12 characters, like ACDE-FGHJ-KMNP." }, f.input);
        return;
      }
      busy(next, true);
      const r = await api("POST", "/api/v1/setup/check-code", { setup_code: code });
      busy(next, false);
      if (!r.ok) { showError(err, r.error, f.input); return; }
      wizard.code = code;
      wizardOwner();
    }, 1));
}

function wizardOwner(serverError) {
  const u = field("username", "Your username", { autocomplete: "username", value: wizard.username, required: true, maxlength: "64", autocapitalize: "none", spellcheck: "false" }, "Letters, digits and . _ - @ +");
  const p = field("password", "Password", { type: "password", autocomplete: "new-password", required: true, maxlength: "256" }, "At least 10 characters. A few unrelated words make a strong, memorable password.");
  const p2 = field("password2", "Password again", { type: "password", autocomplete: "new-password", required: true, maxlength: "256" });
  const err = errorBox("owner-error");
  const next = h("button", { class: "primary", type: "submit" }, "Continue");
  const back = h("button", { type: "button", onclick: () => wizardCode() }, "Back");
  render(formCard("Create the owner account", "The owner can do everything: add people, choose what they see, and change settings.",
    [u.node, p.node, p2.node, err], [next, back], () => {
      if (!u.input.value.trim()) { showError(err, { message: "Choose a username." }, u.input); return; }
      if (p.input.value.length < 10) { showError(err, { message: "The password is too short: use at least 10 characters." }, p.input); return; }
      if (p.input.value !== p2.input.value) { showError(err, { message: "The two passwords differ. Type the same password twice." }, p2.input); return; }
      wizard.username = u.input.value.trim();
      wizard.password = p.input.value;
      wizardName();
    }, 2));
  if (serverError) showError(err, serverError, p.input);
}

function wizardName() {
  const n = field("server-name", "Server name", { value: wizard.serverName || "Hearth", required: true, maxlength: "63" }, "How this Hearth appears to the household, on TVs and in apps.");
  const err = errorBox("name-error");
  const next = h("button", { class: "primary", type: "submit" }, "Claim this Hearth");
  const back = h("button", { type: "button", onclick: () => wizardOwner() }, "Back");
  render(formCard("Name your server", null, [n.node, err], [next, back], async () => {
    wizard.serverName = n.input.value.trim();
    if (!wizard.serverName) { showError(err, { message: "Give the server a name." }, n.input); return; }
    busy(next, true);
    const r = await api("POST", "/api/v1/setup/claim", {
      setup_code: wizard.code, server_name: wizard.serverName,
      owner: { username: wizard.username, password: wizard.password }, device: thisDevice(),
    });
    busy(next, false);
    if (r.ok) {
      wizard.password = "";
      location.hash = "#/setup/network";
      return;
    }
    const code = r.error.code;
    if (code === "weak_password" || code === "invalid_username" || code === "username_taken") { wizardOwner(r.error); return; }
    if (code === "wrong_setup_code") { wizardCode(); showError(document.getElementById("code-error"), r.error, document.getElementById("setup-code")); return; }
    if (code === "already_claimed") { render(h("section", { class: "card" }, h("h1", {}, "Already claimed"), h("p", {}, r.error.message), h("a", { href: "#/" }, "Sign in"))); return; }
    showError(err, r.error, n.input);
  }, 3));
}

async function wizardNetwork() {
  const current = await api("GET", "/api/v1/settings/network");
  const s = current.ok ? current.data : { remote_access: false, secure_connections: "preferred" };
  const radio = (name, value, label, hint, checked) => h("label", { class: "choice" },
    h("input", { type: "radio", name, value, checked }), h("span", {}, label, h("span", { class: "hint" }, hint)));
  const remote = h("fieldset", {}, h("legend", {}, "Access from outside your home"),
    radio("remote", "off", "Off (recommended)", "Only devices on your home network can reach Hearth.", !s.remote_access),
    radio("remote", "on", "On", "People you share with can reach Hearth over the internet, if your router forwards a port to it.", !!s.remote_access));
  const secure = h("fieldset", {}, h("legend", {}, "Secure connections (HTTPS)"),
    radio("secure", "preferred", "Preferred", "Both work; apps and browsers are offered the secure address.", s.secure_connections === "preferred"),
    radio("secure", "required", "Required", "Only encrypted connections are accepted. Install the device certificate on each device first.", s.secure_connections === "required"),
    radio("secure", "disabled", "Off", "Plain connections only. Not recommended.", s.secure_connections === "disabled"));
  const err = errorBox("network-error");
  const next = h("button", { class: "primary", type: "submit" }, "Save and continue");
  const unavailable = !current.ok && current.status === 404;
  render(formCard("Network and security", unavailable ? "Network settings are not available in this version of Hearth; the defaults apply: home network only." : "You can change these any time under Settings.",
    unavailable ? [err] : [remote, secure, err], [next], async () => {
      if (unavailable) { location.hash = "#/setup/libraries"; return; }
      const body = {
        remote_access: main.querySelector("input[name=remote]:checked").value === "on",
        secure_connections: main.querySelector("input[name=secure]:checked").value,
      };
      busy(next, true);
      let r = await api("PATCH", "/api/v1/settings/network", body);
      busy(next, false);
      if (!r.ok && r.error.code === "would_lock_you_out" && body.secure_connections === "required" && current.data && current.data.https_port) {
        const httpsUrl = "https://" + location.hostname + ":" + current.data.https_port + "/#/setup/libraries";
        showError(err, { message: r.error.message + " This browser is using a plain connection; after this step, continue at " + httpsUrl + " (your browser will ask you to trust the device certificate)." });
        const go = h("button", { type: "button", class: "primary", onclick: async () => {
          const again = await api("PATCH", "/api/v1/settings/network", Object.assign({ confirm: true }, body));
          if (!again.ok) { showError(err, again.error); return; }
          location.href = httpsUrl;
        } }, "Require HTTPS and switch");
        err.after(go);
        return;
      }
      if (!r.ok) { showError(err, r.error); return; }
      location.hash = "#/setup/libraries";
    }, 4));
}

async function wizardLibraries() {
  const listed = await api("GET", "/api/v1/libraries");
  const libs = listed.ok && Array.isArray(listed.data) ? listed.data : (listed.ok && listed.data && listed.data.libraries) || [];
  const available = listed.status !== 404;
  const n = field("lib-name", "Library name", { placeholder: "Films", maxlength: "64" });
  const folder = field("lib-folder", "Folder", { placeholder: "/media/usb-disk/Films", spellcheck: "false", autocapitalize: "none" }, "The full path of a folder on this device that holds your media.");
  const kind = h("select", { id: "lib-kind", name: "lib-kind" },
    ["movies", "shows", "music", "photos", "videos"].map((k) => h("option", { value: k }, { movies: "Films", shows: "TV shows", music: "Music", photos: "Photos", videos: "Other videos" }[k])));
  const err = errorBox("lib-error");
  const list = h("ul", { class: "list folders", "aria-label": "Libraries" }, libs.map((l) => h("li", {}, h("span", {}, l.name), h("span", { class: "tag" }, l.kind))));
  const add = h("button", { type: "submit" }, "Add library");
  const next = h("button", { class: "primary", type: "button", onclick: () => { location.hash = "#/setup/done"; } }, libs.length ? "Continue" : "Skip for now");
  const fields = available
    ? [list, n.node, h("label", { for: "lib-kind" }, "Kind"), kind, folder.node, err]
    : [h("p", {}, "Libraries can be added from Settings once this version of Hearth supports them.")];
  render(formCard("Add your media", "Pick folders now, or skip this and add them later.", fields, available ? [add, next] : [next], async () => {
    if (!available) { location.hash = "#/setup/done"; return; }
    if (!n.input.value.trim()) { showError(err, { message: "Give the library a name." }, n.input); return; }
    if (!folder.input.value.trim()) { showError(err, { message: "Enter the folder's path." }, folder.input); return; }
    busy(add, true);
    const r = await api("POST", "/api/v1/libraries", { name: n.input.value.trim(), kind: kind.value, folders: [folder.input.value.trim()] });
    busy(add, false);
    if (!r.ok) { showError(err, r.error, folder.input); return; }
    wizardLibraries();
  }, 5));
}

function wizardDone() {
  const go = h("button", { class: "primary", type: "submit" }, "Go to my Hearth");
  render(formCard("Your Hearth is ready", "You are signed in as the owner on this browser. Next, add the people in your household under Users & Sharing.",
    [], [go], () => { location.hash = "#/"; }, 6));
}

// ---------- signed-in pages ----------

function loginPage(status) {
  nav.hidden = true;
  const u = field("login-username", "Username", { autocomplete: "username", autocapitalize: "none", spellcheck: "false", required: true });
  const p = field("login-password", "Password", { type: "password", autocomplete: "current-password", required: true });
  const err = errorBox("login-error");
  const go = h("button", { class: "primary", type: "submit" }, "Sign in");
  render(formCard("Sign in to " + status.server_name, null, [u.node, p.node, err], [go], async () => {
    busy(go, true);
    const r = await api("POST", "/api/v1/auth/login", { username: u.input.value.trim(), password: p.input.value, device: thisDevice() });
    busy(go, false);
    if (!r.ok) { showError(err, r.error, r.error.code === "bad_credentials" ? p.input : null); return; }
    location.hash = "#/";
    route();
  }));
}

async function homePage(me) {
  const [libs, cont] = await Promise.all([api("GET", "/api/v1/libraries"), api("GET", "/api/v1/continue")]);
  const started = cont.ok ? cont.data : [];
  const list = libs.ok ? (Array.isArray(libs.data) ? libs.data : libs.data.libraries || []) : [];
  render(
    h("section", { class: "card" },
      h("h1", {}, me.server_name),
      h("p", { class: "muted" }, "Signed in as " + me.user.username + " (" + me.user.role + ")."),
      !me.secure && me.https_port ? h("p", { class: "notice" }, "This is a plain connection. For a secure one, use ",
        h("a", { href: "https://" + location.hostname + ":" + me.https_port + "/" }, "https://" + location.hostname + ":" + me.https_port + "/"),
        " (install the Hearth certificate authority from Network & Security once per device).") : null,
    ),
    started.length ? h("section", { class: "card", "aria-labelledby": "cont-title" },
      h("h2", { id: "cont-title" }, "Continue watching"),
      h("ul", { class: "list" }, started.map((it) => h("li", {}, h("a", { href: "#/item/" + it.id }, it.title),
        h("span", { class: "tag" }, Math.round(it.watch.position_ms / 60000) + " min in"))))) : null,
    h("section", { class: "card", "aria-labelledby": "libs-title" },
      h("h2", { id: "libs-title" }, "Libraries"),
      list.length
        ? h("ul", { class: "list" }, list.map((l) => h("li", {}, h("a", { href: "#/library/" + l.id }, l.name),
            h("span", { class: "tag" }, l.kind + (l.items !== undefined ? " · " + l.items + " items" : "")))))
        : h("p", { class: "muted" }, me.user.role === "owner" ? "No libraries yet. Add folders of films, shows, music or photos to start." : "Nothing has been shared with you yet."),
    ),
  );
}

async function devicesPage(me) {
  const r = await api("GET", "/api/v1/devices");
  const err = errorBox("devices-error");
  const rows = (r.ok ? r.data : []).map((d) => {
    const revoke = h("button", { type: "button", class: "danger", "aria-label": "Sign out " + d.name, onclick: async () => {
      busy(revoke, true);
      const x = await api("DELETE", "/api/v1/devices/" + d.id);
      busy(revoke, false);
      if (!x.ok) { showError(err, x.error); return; }
      if (d.current) { route(); } else { devicesPage(me); }
    } }, d.current ? "Sign out" : "Revoke");
    return h("li", {},
      h("span", {}, h("strong", {}, d.name), d.current ? h("span", { class: "tag" }, "this device") : null,
        h("span", { class: "hint" }, d.platform + " · last seen " + new Date(d.last_seen * 1000).toLocaleString() + " from " + d.last_address)),
      revoke);
  });
  render(h("section", { class: "card", "aria-labelledby": "title" },
    h("h1", { id: "title" }, "Devices"),
    h("p", { class: "muted" }, "Every browser or app signed in to this Hearth. Revoking one signs it out at once."),
    r.ok ? h("ul", { class: "list" }, rows) : null, err));
  if (!r.ok) showError(err, r.error);
}

// ---------- libraries and playback ----------

function ratingText(r) {
  if (!r) return null;
  return r.value || r.raw || null;
}

async function libraryPage(id) {
  const [lib, items] = await Promise.all([api("GET", "/api/v1/libraries"), api("GET", "/api/v1/libraries/" + id + "/items?limit=500")]);
  const err = errorBox("lib-page-error");
  const info = lib.ok ? (Array.isArray(lib.data) ? lib.data : lib.data.libraries || []).find((l) => String(l.id) === String(id)) : null;
  if (!items.ok) {
    render(h("section", { class: "card" }, h("h1", {}, "Library"), err));
    showError(err, items.error);
    return;
  }
  const cards = items.data.items.map((it) => h("li", {}, h("a", { class: "poster", href: "#/item/" + it.id },
    it.has_artwork ? h("img", { src: "/api/v1/items/" + it.id + "/artwork", alt: "", loading: "lazy" }) : h("span", { class: "placeholder", "aria-hidden": "true" }, it.title.slice(0, 1)),
    h("span", { class: "title" }, it.title), h("span", { class: "hint" }, [it.year, ratingText(it.rating)].filter(Boolean).join(" · ")))));
  render(h("section", { class: "card", "aria-labelledby": "title" }, h("h1", { id: "title" }, info ? info.name : "Library"),
    cards.length ? h("ul", { class: "grid", "aria-label": "Titles" }, cards) : h("p", { class: "muted" }, "Nothing here yet.")));
}

async function itemPage(id) {
  const r = await api("GET", "/api/v1/items/" + id);
  const err = errorBox("item-error");
  if (!r.ok) { render(h("section", { class: "card" }, h("h1", {}, "Not available"), err)); showError(err, r.error); return; }
  const it = r.data;
  const isAudio = /^audio\//.test(it.content_type);
  const player = h(isAudio ? "audio" : "video", { controls: true, preload: "metadata", src: it.stream_url, class: "player" });
  for (const [i, sub] of (it.subtitles || []).entries()) {
    if (sub.url) player.append(h("track", { kind: "subtitles", src: sub.url, srclang: sub.language || "und", label: sub.label || sub.language || "Subtitles " + (i + 1) }));
  }
  // Resume where this user stopped, and keep saving progress while playing.
  const resumeAt = it.watch && !it.watch.watched ? it.watch.position_ms / 1000 : 0;
  player.addEventListener("loadedmetadata", () => { if (resumeAt > 0 && resumeAt < player.duration) player.currentTime = resumeAt; });
  let lastSaved = 0;
  const save = () => {
    const ms = Math.floor(player.currentTime * 1000);
    if (Math.abs(ms - lastSaved) < 1000) return;
    lastSaved = ms;
    api("PUT", "/api/v1/items/" + it.id + "/progress", { position_ms: ms });
  };
  player.addEventListener("timeupdate", () => { if (Math.abs(player.currentTime * 1000 - lastSaved) >= 5000) save(); });
  player.addEventListener("pause", save);
  window.addEventListener("hashchange", save, { once: true });
  const markBtn = h("button", { type: "button", onclick: async () => {
    const r = await api("POST", "/api/v1/items/" + it.id + "/watched", { watched: !(it.watch && it.watch.watched) });
    if (r.ok) { it.watch = r.data; markBtn.textContent = r.data.watched ? "Mark unwatched" : "Mark watched"; }
  } }, it.watch && it.watch.watched ? "Mark unwatched" : "Mark watched");
  const note = h("p", { class: "hint", role: "status" });
  player.addEventListener("error", () => { note.textContent = "This browser cannot play this file's format (" + it.content_type + "). Try another device or app."; });
  render(h("section", { class: "card", "aria-labelledby": "title" },
    h("h1", { id: "title" }, it.title + (it.year ? " (" + it.year + ")" : "")),
    h("p", { class: "muted" }, [ratingText(it.rating), (it.genres || []).join(", ")].filter(Boolean).join(" · ")),
    it.plot ? h("p", {}, it.plot) : null, player, note, h("div", { class: "actions" }, markBtn)));
}

// ---------- network & security ----------

async function networkPage() {
  const [net, tls] = await Promise.all([api("GET", "/api/v1/settings/network"), api("GET", "/api/v1/tls")]);
  const err = errorBox("net-error");
  if (!net.ok) { render(h("section", { class: "card" }, h("h1", {}, "Network & Security"), err)); showError(err, net.error); return; }
  const n = net.data;
  const radio = (name, value, label, hint, checked) => h("label", { class: "choice" },
    h("input", { type: "radio", name, value, checked }), h("span", {}, label, h("span", { class: "hint" }, hint)));
  const list = (id, label, values, hint) => field(id, label, { value: (values || []).join(", "), spellcheck: "false", autocapitalize: "none" }, hint);
  const lanExtra = list("lan-networks", "Extra home networks", n.lan_networks, "Networks (like 192.168.2.0/24) to treat as home, besides the ones Hearth found itself.");
  const deny = list("ip-deny", "Blocked addresses", n.ip_deny, "Addresses or networks refused before anything else.");
  const proxies = list("proxies", "Trusted reverse proxies", n.trusted_proxies, "Only these may tell Hearth the real client address (X-Forwarded-For).");
  const save = h("button", { class: "primary", type: "submit" }, "Save");
  const status = h("p", { role: "status", class: "hint" });
  const split = (v) => v.split(",").map((x) => x.trim()).filter(Boolean);
  const form = h("form", { novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    const body = {
      remote_access: form.querySelector("input[name=remote]:checked").value === "on",
      secure_connections: form.querySelector("input[name=secure]:checked").value,
      lan_networks: split(lanExtra.input.value), ip_deny: split(deny.input.value), trusted_proxies: split(proxies.input.value),
    };
    busy(save, true);
    let r = await api("PATCH", "/api/v1/settings/network", body);
    if (!r.ok && r.error.code === "would_lock_you_out" && confirm(r.error.message + "\n\nSave anyway?")) {
      r = await api("PATCH", "/api/v1/settings/network", Object.assign({ confirm: true }, body));
    }
    busy(save, false);
    if (!r.ok) { showError(err, r.error); return; }
    status.textContent = "Saved. The new rules apply from the next request.";
  } },
    h("fieldset", {}, h("legend", {}, "Access from outside your home"),
      radio("remote", "off", "Off", "Only the home network can reach Hearth.", !n.remote_access),
      radio("remote", "on", "On", "Signed-in people can reach Hearth over the internet through your router.", n.remote_access)),
    h("fieldset", {}, h("legend", {}, "Secure connections (HTTPS)"),
      radio("secure", "preferred", "Preferred", "Both plain and secure connections work.", n.secure_connections === "preferred"),
      radio("secure", "required", "Required", "Plain connections are redirected (browsers) or refused (apps).", n.secure_connections === "required"),
      radio("secure", "disabled", "Off", "No secure connections.", n.secure_connections === "disabled")),
    lanExtra.node, deny.node, proxies.node, err, h("div", { class: "actions" }, save), status);
  const cert = tls.ok && tls.data.active;
  render(
    h("section", { class: "card", "aria-labelledby": "title" }, h("h1", { id: "title" }, "Network & Security"),
      h("p", { class: "muted" }, "Who can reach this Hearth, and how."),
      h("dl", { class: "facts" },
        h("dt", {}, "This browser"), h("dd", {}, n.this_client.address + " — " + ({ local: "on this device", lan: "home network", remote: "internet" }[n.this_client.class] || n.this_client.class) + (n.this_client.secure ? ", secure connection" : ", plain connection")),
        h("dt", {}, "Home networks found"), h("dd", {}, (n.detected_lan_networks || []).join(", ") || "none"),
        h("dt", {}, "HTTPS"), h("dd", {}, n.https_port ? "port " + n.https_port : "not available"))),
    h("section", { class: "card", "aria-labelledby": "rules-title" }, h("h2", { id: "rules-title" }, "Rules"), form),
    h("section", { class: "card", "aria-labelledby": "cert-title" }, h("h2", { id: "cert-title" }, "Certificate"),
      cert ? h("dl", { class: "facts" },
        h("dt", {}, "Names"), h("dd", {}, [...cert.dns_names, ...cert.ip_addresses].join(", ")),
        h("dt", {}, "Expires"), h("dd", {}, new Date(cert.not_after * 1000).toLocaleDateString()),
        h("dt", {}, "Issued by"), h("dd", {}, cert.source === "custom" ? "your own certificate" : "this Hearth's own certificate authority")) : h("p", { class: "muted" }, "HTTPS is not available."),
      h("p", {}, "Install the Hearth certificate authority once on each device, and browsers will trust this Hearth's secure address. It can only vouch for this Hearth's own names."),
      h("a", { class: "button", href: "/api/v1/tls/ca.pem", download: "hearth-ca.pem" }, "Download the certificate authority")),
  );
}

// ---------- household ----------

function roleName(role) {
  return { owner: "Owner", managed: "Managed profile", guest: "Guest", friend: "Friend" }[role] || role;
}

async function usersPage(me) {
  const [users, invites, home, libs] = await Promise.all([
    api("GET", "/api/v1/users"), api("GET", "/api/v1/invites"), api("GET", "/api/v1/settings/home"), api("GET", "/api/v1/libraries"),
  ]);
  const err = errorBox("users-error");
  if (!users.ok) { render(h("section", { class: "card" }, h("h1", {}, "Users & Sharing"), err)); showError(err, users.error); return; }
  const libraries = libs.ok ? (Array.isArray(libs.data) ? libs.data : libs.data.libraries || []) : [];
  const list = users.data;
  const guest = list.find((u) => u.role === "guest");

  const rows = list.map((u) => {
    const actions = h("span", { class: "actions" });
    if (u.role !== "owner") {
      actions.append(h("button", { type: "button", "aria-label": "What " + u.username + " may see", onclick: () => restrictionsEditor(u, libraries, actions) }, "Restrictions"));
    }
    if (u.role !== "guest") {
      const pinBtn = h("button", { type: "button", "aria-label": "PIN for " + u.username, onclick: () => pinEditor(u, actions) }, u.has_pin ? "Change PIN" : "Set PIN");
      actions.append(pinBtn);
    }
    if (u.role !== "owner") {
      const rm = h("button", { type: "button", class: "danger", "aria-label": "Remove " + u.username, onclick: () => {
        const yes = h("button", { type: "button", class: "danger", onclick: async () => {
          busy(yes, true);
          const r = await api("DELETE", "/api/v1/users/" + u.id + "?confirm=true");
          busy(yes, false);
          if (!r.ok) { showError(err, r.error); return; }
          usersPage(me);
        } }, "Remove " + u.username);
        const no = h("button", { type: "button", onclick: () => usersPage(me) }, "Cancel");
        actions.replaceChildren(h("span", { class: "hint", role: "alert" }, "This deletes " + u.username + "'s devices and watch history for good."), yes, no);
        no.focus();
      } }, "Remove");
      actions.append(rm);
    }
    return h("li", {}, h("span", {}, h("strong", {}, u.username), " ", h("span", { class: "tag" }, roleName(u.role)),
      u.has_pin ? h("span", { class: "tag" }, "PIN") : null, u.two_factor ? h("span", { class: "tag" }, "2FA") : null,
      u.role === "guest" && !u.enabled ? h("span", { class: "tag" }, "off") : null), actions);
  });

  const name = field("new-profile", "Name", { maxlength: "64" }, "A profile for someone in the house. Profiles have no password; they are picked on a signed-in home device.");
  const preset = presetSelect("new-preset", "");
  const addErr = errorBox("add-error");
  const add = h("button", { type: "submit" }, "Add profile");
  const addForm = h("form", { novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    busy(add, true);
    const body = { kind: "managed", name: name.input.value.trim() };
    if (preset.select.value) body.preset = preset.select.value;
    const r = await api("POST", "/api/v1/users", body);
    busy(add, false);
    if (!r.ok) { showError(addErr, r.error, name.input); return; }
    usersPage(me);
  } }, name.node, preset.node, addErr, h("div", { class: "actions" }, add));

  const guestToggle = h("button", { type: "button", onclick: async () => {
    busy(guestToggle, true);
    const r = guest ? await api("PATCH", "/api/v1/users/" + guest.id, { enabled: !guest.enabled }) : await api("POST", "/api/v1/users", { kind: "guest" });
    busy(guestToggle, false);
    if (!r.ok) { showError(err, r.error); return; }
    usersPage(me);
  } }, guest && guest.enabled ? "Turn guest access off" : "Turn guest access on");

  const who = field("invitee", "Friend's username or e-mail", { maxlength: "254", autocapitalize: "none", spellcheck: "false" });
  const libBoxes = libraries.map((l) => h("label", { class: "choice" }, h("input", { type: "checkbox", name: "invite-lib", value: String(l.id), checked: true }), h("span", {}, l.name)));
  const invErr = errorBox("invite-error");
  const linkOut = h("p", { id: "invite-link", "aria-live": "polite" });
  const inv = h("button", { type: "submit" }, "Create invite link");
  const invForm = h("form", { novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    const chosen = [...main.querySelectorAll("input[name=invite-lib]:checked")].map((x) => Number(x.value));
    busy(inv, true);
    const r = await api("POST", "/api/v1/invites", { invitee: who.input.value.trim(), libraries: libraries.length ? chosen : null });
    busy(inv, false);
    if (!r.ok) { showError(invErr, r.error, who.input); return; }
    linkOut.replaceChildren("Send this link (it works once, for 3 days): ", h("code", {}, location.origin + r.data.link));
  } }, who.node, libBoxes.length ? h("fieldset", {}, h("legend", {}, "Libraries to share"), libBoxes) : null, invErr, h("div", { class: "actions" }, inv), linkOut);

  const pending = (invites.ok ? invites.data : []).map((i) => h("li", {}, h("span", {}, i.invitee, h("span", { class: "hint" }, "expires " + new Date(i.expires_at * 1000).toLocaleString())),
    h("button", { type: "button", class: "danger", onclick: async () => { await api("DELETE", "/api/v1/invites/" + i.id); usersPage(me); } }, "Withdraw")));

  render(
    h("section", { class: "card", "aria-labelledby": "title" }, h("h1", { id: "title" }, "Users & Sharing"),
      h("p", { class: "muted" }, "Who can use this Hearth, and what each person may see."),
      home.ok && home.data.on ? h("p", { class: "notice", role: "status" }, "Home mode is on (" + home.data.reasons.join("; ") + "): everyone must sign in, and DLNA is off.") : null,
      h("ul", { class: "list" }, rows), err),
    h("section", { class: "card", "aria-labelledby": "add-title" }, h("h2", { id: "add-title" }, "Add a household profile"), addForm),
    h("section", { class: "card", "aria-labelledby": "guest-title" }, h("h2", { id: "guest-title" }, "Guest access"),
      h("p", { class: "muted" }, "A guest profile lets visitors watch without an account of their own. It never has a PIN."), guestToggle),
    h("section", { class: "card", "aria-labelledby": "invite-title" }, h("h2", { id: "invite-title" }, "Invite a friend"),
      h("p", { class: "muted" }, "Friends get their own username and password and see only the libraries you choose."), invForm,
      pending.length ? h("ul", { class: "list", "aria-label": "Pending invites" }, pending) : null),
  );
}

const PRESETS = { "": "Everything", little_kid: "Little kid (up to age 7)", older_kid: "Older kid (up to age 12)", teen: "Teen (up to age 16)" };

function presetSelect(id, value) {
  const select = h("select", { id, name: id }, Object.entries(PRESETS).map(([k, v]) => h("option", { value: k, selected: k === value }, v)));
  return { select, node: h("div", {}, h("label", { for: id }, "What they may see"),
    h("span", { class: "hint" }, "Presets limit films and TV by age rating across rating systems (MPA, BBFC, FSK, …), hide unrated titles and common unsuitable labels."), select) };
}

function restrictionsEditor(user, libraries, container) {
  const r = user.restrictions || {};
  const preset = presetSelect("preset-" + user.id, "");
  const libs = r.libraries === undefined || r.libraries === "all" ? null : r.libraries;
  const boxes = libraries.map((l) => h("label", { class: "choice" }, h("input", { type: "checkbox", name: "lib-" + user.id, value: String(l.id), checked: !libs || libs.includes(l.id) }), h("span", {}, l.name)));
  const deny = field("deny-" + user.id, "Hide titles labelled", { value: (r.labels_deny || []).join(", ") }, "Comma-separated labels or tags, e.g. horror, violence.");
  const unrated = h("label", { class: "choice" }, h("input", { type: "checkbox", id: "unrated-" + user.id, checked: !(r.unrated && r.unrated.movies === "block") }), h("span", {}, "Show titles without a rating"));
  const e = errorBox("restr-error-" + user.id);
  const save = h("button", { type: "submit", class: "primary" }, "Save");
  container.replaceChildren(h("form", { class: "editor", novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    let body;
    if (preset.select.value) {
      body = { preset: preset.select.value };
    } else {
      const chosen = [...container.querySelectorAll("input[name=lib-" + user.id + "]:checked")].map((x) => Number(x.value));
      const rule = unrated.querySelector("input").checked ? "allow" : "block";
      body = { restrictions: {
        libraries: libraries.length && chosen.length !== libraries.length ? chosen : "all",
        max_rating: r.max_rating || {},
        unrated: { movies: rule, tv: rule },
        labels_allow: r.labels_allow || [],
        labels_deny: deny.input.value.split(",").map((x) => x.trim()).filter(Boolean),
      } };
    }
    const res = await api("PATCH", "/api/v1/users/" + user.id, body);
    if (!res.ok) { showError(e, res.error); return; }
    route();
  } }, preset.node, boxes.length ? h("fieldset", {}, h("legend", {}, "Libraries"), boxes) : null, unrated, deny.node, e,
    h("div", { class: "actions" }, save, h("button", { type: "button", onclick: () => route() }, "Cancel"))));
  preset.select.focus();
}

function pinEditor(user, container) {
  const f = field("pin-" + user.id, "New PIN for " + user.username, { inputmode: "numeric", maxlength: "4", pattern: "[0-9]{4}", autocomplete: "off" });
  const e = errorBox("pin-error-" + user.id);
  const save = h("button", { type: "submit" }, "Save PIN");
  const clear = h("button", { type: "button", onclick: async () => { const r = await api("PUT", "/api/v1/users/" + user.id + "/pin", { pin: null }); if (!r.ok) showError(e, r.error); else route(); } }, "Remove PIN");
  container.replaceChildren(h("form", { novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    const r = await api("PUT", "/api/v1/users/" + user.id + "/pin", { pin: f.input.value });
    if (!r.ok) { showError(e, r.error, f.input); return; }
    route();
  } }, f.node, e, h("div", { class: "actions" }, save, user.has_pin ? clear : null)));
  f.input.focus();
}

async function profilesPage(me) {
  const r = await api("GET", "/api/v1/auth/profiles");
  const err = errorBox("profile-error");
  const tiles = (r.ok ? r.data : []).map((p) => h("li", {}, h("button", { type: "button", class: p.current ? "tile current" : "tile", "aria-pressed": p.current ? "true" : "false",
    onclick: () => (p.has_pin ? pinPad(p) : doSwitch(p, null, err)) }, h("span", { class: "avatar", "aria-hidden": "true" }, p.name.slice(0, 1).toUpperCase()), p.name)));
  render(h("section", { class: "card", "aria-labelledby": "title" }, h("h1", { id: "title" }, "Who's watching?"),
    tiles.length ? h("ul", { class: "tiles" }, tiles) : h("p", { class: "muted" }, "Profiles can be picked only on devices signed in by the household."), err));
}

async function doSwitch(p, pin, err) {
  const r = await api("POST", "/api/v1/auth/switch", { user_id: p.id, pin });
  if (!r.ok) { showError(err, r.error); return false; }
  location.hash = "#/";
  route();
  return true;
}

function pinPad(p) {
  let entered = "";
  const dots = h("p", { class: "pin-dots", "aria-live": "polite", "aria-label": "PIN digits entered" }, "○○○○");
  const err = errorBox("pin-pad-error");
  const show = () => { dots.textContent = "●".repeat(entered.length) + "○".repeat(4 - entered.length); };
  const press = async (d) => {
    if (d === "back") { entered = entered.slice(0, -1); show(); return; }
    if (entered.length >= 4) return;
    entered += d; show();
    if (entered.length === 4) {
      const ok = await doSwitch(p, entered, err);
      if (!ok) { entered = ""; show(); }
    }
  };
  const keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "back", "0"].map((k) => h("button", { type: "button", class: "key", "aria-label": k === "back" ? "Delete last digit" : k, onclick: () => press(k) }, k === "back" ? "⌫" : k));
  const pad = h("div", { class: "pinpad", onkeydown: (e) => { if (/^[0-9]$/.test(e.key)) { e.preventDefault(); press(e.key); } else if (e.key === "Backspace") { e.preventDefault(); press("back"); } } }, keys);
  render(h("section", { class: "card", "aria-labelledby": "title" }, h("h1", { id: "title" }, "PIN for " + p.name), dots, pad, err,
    h("div", { class: "actions" }, h("button", { type: "button", onclick: () => route() }, "Cancel"))));
  keys[0].focus();
}

async function invitePage(token) {
  nav.hidden = true;
  const u = field("invite-username", "Choose a username", { autocomplete: "username", autocapitalize: "none", spellcheck: "false", maxlength: "64" });
  const p = field("invite-password", "Choose a password", { type: "password", autocomplete: "new-password", maxlength: "256" }, "At least 10 characters.");
  const err = errorBox("accept-error");
  const go = h("button", { class: "primary", type: "submit" }, "Join");
  render(formCard("You are invited to " + (window.hearthStatus ? window.hearthStatus.server_name : "Hearth"), "Create your account to see what has been shared with you.",
    [u.node, p.node, err], [go], async () => {
      busy(go, true);
      const r = await api("POST", "/api/v1/invites/" + encodeURIComponent(token) + "/accept", { username: u.input.value.trim(), password: p.input.value, device: thisDevice() });
      busy(go, false);
      if (!r.ok) { showError(err, r.error); return; }
      location.hash = "#/";
      route();
    }));
}

// ---------- routing ----------

async function route() {
  const status = await api("GET", "/api/v1/setup");
  if (!status.ok) { render(h("section", { class: "card" }, h("h1", {}, "Hearth is not answering"), h("p", {}, status.error.message))); return; }
  window.hearthStatus = status.data;
  document.getElementById("brand-name").textContent = status.data.server_name;
  document.title = status.data.server_name;
  const hash = location.hash || "#/";
  if (!status.data.claimed) {
    nav.hidden = true;
    wizardWelcome(status.data);
    return;
  }
  if (hash.startsWith("#/invite/")) { invitePage(hash.slice("#/invite/".length)); return; }
  const me = await api("GET", "/api/v1/me");
  if (me.status === 401) { loginPage(status.data); return; }
  if (!me.ok) { render(h("section", { class: "card" }, h("h1", {}, "Something went wrong"), h("p", {}, me.error.message))); return; }
  nav.hidden = false;
  const owner = me.data.user.role === "owner";
  document.getElementById("nav-users").hidden = !owner;
  document.getElementById("nav-network").hidden = !owner;
  document.getElementById("nav-profiles").hidden = !(owner || me.data.user.role === "managed" || me.data.user.role === "guest");
  for (const a of nav.querySelectorAll("a")) {
    if (a.getAttribute("href") === hash) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  if (hash.startsWith("#/library/")) return libraryPage(hash.slice("#/library/".length));
  if (hash.startsWith("#/item/")) return itemPage(hash.slice("#/item/".length));
  switch (hash) {
    case "#/setup/network": return wizardNetwork();
    case "#/setup/libraries": return wizardLibraries();
    case "#/setup/done": return wizardDone();
    case "#/devices": return devicesPage(me.data);
    case "#/users": return owner ? usersPage(me.data) : homePage(me.data);
    case "#/profiles": return profilesPage(me.data);
    case "#/network": return owner ? networkPage() : homePage(me.data);
    default: return homePage(me.data);
  }
}

document.getElementById("signout").addEventListener("click", async () => {
  await api("POST", "/api/v1/auth/logout");
  location.hash = "#/";
  route();
});
window.addEventListener("hashchange", route);
if (window.matchMedia) document.documentElement.classList.add("auto");
route();
