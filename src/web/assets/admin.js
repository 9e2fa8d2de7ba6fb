// Owner settings about the device itself: Disks & Libraries (scan progress), Updates
// (progress, history, rollbacks), DLNA, Privacy and System (graphs of the last hour).
// Pages are built to the API contracts and show only what the server actually sends.
import { h, api, field, errorBox, showError, busy, statusLine, checkbox, listOf, bytes, when, ago, kindName, onLeave, progressBar } from "./core.js";
import { settingsShell, pageHead, card } from "./settings.js";

// Re-runs `fn` every `ms` while the page is shown.
function poll(fn, ms, node) {
  const t = setInterval(fn, ms);
  onLeave(() => clearInterval(t), node);
}

// ---------- disks & libraries ----------

function scanLine(lib) {
  const s = lib.scan;
  const id = "scan-" + lib.id;
  if (s && s.running) {
    // No total is known ahead of a walk; the last scan's count is a fair estimate.
    const est = lib.items > s.files_seen ? lib.items : null;
    return h("div", { class: "scan", id },
      progressBar(est ? s.files_seen : null, est || 1, "Scanning " + lib.name),
      h("span", { class: "hint" }, "Scanning: " + s.files_seen + " files looked at, " + s.new + " new, " + s.changed + " changed" + (s.errors ? ", " + s.errors + " could not be read" : "") + "."));
  }
  return h("div", { class: "scan", id }, h("span", { class: "hint" },
    lib.last_scan ? "Last scanned " + ago(lib.last_scan) + (s && s.errors ? "; " + s.errors + " files could not be read" : "") + "." : "Not scanned yet."));
}

export async function librariesPage() {
  const [libsR, disksR] = await Promise.all([api("GET", "/api/v1/libraries"), api("GET", "/api/v1/disks")]);
  const libs = listOf(libsR);
  const err = errorBox("libs-error");
  const rows = h("ul", { class: "list", id: "library-rows" });
  const fill = (list) => rows.replaceChildren(...list.map((l) => h("li", { class: "library-row" },
    h("div", { class: "grow" }, h("strong", {}, l.name), " ", h("span", { class: "tag" }, kindName(l.kind)), " ", h("span", { class: "hint" }, l.items + " items"),
      h("span", { class: "hint" }, (l.folders || []).join(", ")), scanLine(l)),
    h("div", { class: "actions" },
      h("button", { type: "button", "aria-label": "Scan now: " + l.name, disabled: !!(l.scan && l.scan.running), onclick: async () => {
        const r = await api("POST", "/api/v1/libraries/" + l.id + "/scan");
        if (!r.ok) showError(err, r.error); else refresh();
      } }, "Scan now"),
      h("button", { type: "button", "aria-label": "Problems: files in " + l.name + " that could not be used", onclick: () => scanErrors(l) }, "Problems")))));
  fill(libs);
  const refresh = async () => { const r = await api("GET", "/api/v1/libraries"); if (r.ok) fill(listOf(r)); };
  poll(() => { if (rows.querySelector("progress")) refresh(); }, 1000, rows);

  const n = field("lib-name", "Library name", { placeholder: "Films", maxlength: "64" });
  const folder = field("lib-folder", "Folder", { placeholder: "/media/usb-disk/Films", spellcheck: "false", autocapitalize: "none" }, "The full path of a folder on this device. On a disk you plugged in, that is under /media/.");
  const kind = h("select", { id: "lib-kind" }, ["movies", "shows", "music", "photos", "videos"].map((k) => h("option", { value: k }, kindName(k))));
  const addErr = errorBox("add-lib-error");
  const add = h("button", { type: "submit", class: "primary" }, "Add library");
  const status = statusLine("lib-status");
  const form = h("form", { novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    if (!n.input.value.trim()) { showError(addErr, { message: "Give the library a name." }, n.input); return; }
    if (!folder.input.value.trim()) { showError(addErr, { message: "Enter the folder's path." }, folder.input); return; }
    busy(add, true);
    const r = await api("POST", "/api/v1/libraries", { name: n.input.value.trim(), kind: kind.value, folders: [folder.input.value.trim()] });
    busy(add, false);
    if (!r.ok) { showError(addErr, r.error, folder.input); return; }
    showError(addErr, null);
    status.textContent = "Added " + r.data.name + "; scanning now.";
    n.input.value = ""; folder.input.value = "";
    refresh();
  } }, n.node, h("label", { for: "lib-kind" }, "Kind"), kind, folder.node, addErr, h("div", { class: "actions" }, add), status);

  settingsShell("libraries", pageHead("Disks & Libraries", "Where your media lives. Libraries are folders Hearth scans for films, shows, music and photos; who sees each one is set under Users & Sharing."),
    card("libs-title", "Libraries", null, libs.length ? rows : h("p", { class: "muted" }, "No libraries yet."), err),
    card("add-title", "Add a library", "Hearth only reads these folders; it never changes or deletes your files.", form),
    disksCard(disksR));
}

async function scanErrors(lib) {
  const r = await api("GET", "/api/v1/libraries/" + lib.id + "/scan");
  const box = document.getElementById("scan-" + lib.id);
  if (!box) return;
  if (!r.ok) { box.append(h("p", { class: "error" }, r.error.message)); return; }
  const errs = r.data.errors || [];
  box.append(errs.length
    ? h("ul", { class: "scan-errors", "aria-label": "Files " + lib.name + " could not use" }, errs.slice(0, 100).map((e) => h("li", {}, h("code", {}, e.rel_path), " — ", e.message)))
    : h("p", { class: "hint" }, "Every file was read."));
}

function disksCard(r) {
  if (!r.ok) return card("disks-title", "Disks", null, h("p", { class: "error" }, r.error.message));
  const d = r.data;
  const body = [];
  if (!d.agent) {
    body.push(h("p", { class: "notice" }, (d.message || "Disk management needs the Hearth appliance.") + " On a laptop or server without the appliance's disk helper, add any folder by its path above."));
  }
  const err = errorBox("disk-error");
  const rows = (d.disks || []).flatMap((disk) => (disk.volumes || []).map((v) => {
    const label = v.label || [disk.vendor, disk.model].filter(Boolean).join(" ") || v.name;
    const used = v.total_bytes && v.free_bytes !== null && v.free_bytes !== undefined ? v.total_bytes - v.free_bytes : null;
    const mount = (v.mount_points || [])[0];
    const act = [];
    if (d.agent && v.uuid && v.fs_type) {
      const verb = mount ? "eject" : "mount";
      act.push(h("button", { type: "button", "aria-label": (mount ? "Eject: " : "Use (read-only): ") + label, onclick: async (e) => {
        busy(e.target, true);
        const x = await api("POST", "/api/v1/disks/" + encodeURIComponent(v.uuid) + "/" + verb, mount ? undefined : { read_only: true });
        busy(e.target, false);
        if (!x.ok) showError(err, x.error); else librariesPage();
      } }, mount ? "Eject" : "Use (read-only)"));
    }
    return h("li", {}, h("div", { class: "grow" }, h("strong", {}, label), " ", v.fs_type ? h("span", { class: "tag" }, v.fs_type) : null, disk.usb ? h("span", { class: "tag" }, "USB") : null,
      h("span", { class: "hint" }, [bytes(v.size_bytes), mount ? "at " + mount + (v.mounted_read_only ? " (read-only)" : "") : "not in use"].filter(Boolean).join(" · ")),
      used !== null ? progressBar(used, v.total_bytes, label + " space used") : null), h("div", { class: "actions" }, act));
  }));
  body.push(rows.length ? h("ul", { class: "list" }, rows) : h("p", { class: "muted" }, "No removable disks found."));
  const known = (d.known || []).filter((k) => !k.online);
  if (known.length) {
    body.push(h("h3", {}, "Disks seen before"), h("ul", { class: "list" }, known.map((k) => h("li", {}, h("span", {}, h("strong", {}, k.label || k.uuid), h("span", { class: "hint" }, "offline · last seen " + ago(k.last_seen) + " · comes back at " + k.mount_point))))));
  }
  body.push(err);
  return card("disks-title", "Disks", "Plug a USB disk into the device and choose Use. Read-only means Hearth can never change a file on it.", ...body);
}

// ---------- updates ----------

const STATE_TEXT = { downloading: "Downloading", verifying: "Checking the signature", writing: "Writing to the spare system slot", staged: "Ready: restart to finish", rebooting: "Restarting", failed: "Failed" };
const OUTCOME_TEXT = { installed: "installed", rolled_back: "rolled back", failed: "failed" };

export async function updatesPage() {
  const r = await api("GET", "/api/v1/updates");
  if (!r.ok) { settingsShell("updates", pageHead("Updates"), h("p", { class: "error", role: "alert" }, r.error.message)); return; }
  const u = r.data;
  const err = errorBox("updates-error");
  const status = statusLine("updates-status");
  const act = async (button, method, path, body, raw) => {
    busy(button, true);
    const x = await api(method, path, body, raw);
    busy(button, false);
    if (!x.ok) { showError(err, x.error); return null; }
    showError(err, null);
    return x;
  };
  const check = h("button", { type: "button", onclick: async () => { const x = await act(check, "POST", "/api/v1/updates/check"); if (x) { status.textContent = "Checked just now."; updatesPage(); } } }, "Check now");
  const install = h("button", { type: "button", class: "primary", disabled: u.can_install === false, onclick: async () => { const x = await act(install, "POST", "/api/v1/updates/install", { reboot: true }); if (x) updatesPage(); } }, "Install " + (u.available ? u.available.version : ""));
  const inst = u.install || null;
  const running = inst && !["failed", "staged"].includes(inst.state);
  const progress = inst ? h("div", { class: "install", id: "install-progress" },
    h("p", {}, h("strong", {}, (STATE_TEXT[inst.state] || inst.state) + (inst.version ? " " + inst.version : ""))),
    inst.bytes_total ? progressBar(inst.bytes_done, inst.bytes_total, "Update progress") : null,
    h("p", { class: "hint" }, [
      inst.bytes_total ? bytes(inst.bytes_done) + " of " + bytes(inst.bytes_total) : null,
      inst.chunks_reused ? inst.chunks_reused + " pieces already on the device were reused" : null,
      inst.bytes_per_second ? bytes(inst.bytes_per_second) + "/s" : null,
      inst.eta_seconds ? "about " + Math.ceil(inst.eta_seconds / 60) + " min left" : null,
    ].filter(Boolean).join(" · ")),
    inst.error ? h("p", { class: "error" }, inst.error) : null,
    inst.state === "staged" ? h("button", { type: "button", class: "primary", onclick: async (e) => { if (await act(e.target, "POST", "/api/v1/updates/reboot")) updatesPage(); } }, "Restart now") : null) : null;

  const channel = h("select", { id: "channel" }, [["stable", "Stable — tested releases"], ["beta", "Beta — earlier, less tested"]].map(([v, t]) => h("option", { value: v, selected: u.channel === v }, t)));
  const every = h("select", { id: "interval" }, [[0, "Never (check only when I ask)"], [6, "Every 6 hours"], [24, "Daily"], [168, "Weekly"]]
    .concat([[0, 6, 24, 168].includes(u.check_interval_hours) ? [] : [[u.check_interval_hours, "Every " + u.check_interval_hours + " hours"]]])
    .map(([v, t]) => h("option", { value: String(v), selected: v === u.check_interval_hours }, t)));
  const downgrade = "allow_downgrade" in u ? checkbox("allow-downgrade", "Allow installing an older version", !!u.allow_downgrade, "Only for going back after a bad release; normally versions only move forward.") : null;
  const save = h("button", { type: "submit" }, "Save");
  const settingsStatus = statusLine("update-settings-status");
  const settingsErr = errorBox("update-settings-error");
  const form = h("form", { novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    const body = { channel: channel.value, check_interval_hours: Number(every.value) };
    if (downgrade) body.allow_downgrade = downgrade.querySelector("input").checked;
    busy(save, true);
    const x = await api("PUT", "/api/v1/updates/settings", body);
    busy(save, false);
    if (!x.ok) { showError(settingsErr, x.status === 404 || x.status === 405 ? { message: "This version of Hearth cannot change update settings from the web page yet; set [updates] in hearth.toml." } : x.error); return; }
    showError(settingsErr, null);
    settingsStatus.textContent = "Saved.";
  } }, h("label", { for: "channel" }, "Channel"), channel, h("label", { for: "interval" }, "Check for updates"), every, downgrade, settingsErr, h("div", { class: "actions" }, save), settingsStatus);

  const fileInput = h("input", { type: "file", id: "bundle-file", accept: ".hearth,.bundle,application/octet-stream" });
  const uploadBtn = h("button", { type: "submit" }, "Install from file");
  const uploadForm = h("form", { novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    const f = fileInput.files && fileInput.files[0];
    if (!f) { showError(err, { message: "Choose an update file first." }, fileInput); return; }
    if (await act(uploadBtn, "POST", "/api/v1/updates/upload", undefined, f)) updatesPage();
  } }, h("label", { for: "bundle-file" }, "Update file"), fileInput, h("div", { class: "actions" }, uploadBtn));

  // While an install runs, refresh the progress block in place (focus stays put).
  if (running && progress) {
    poll(async () => {
      const x = await api("GET", "/api/v1/updates");
      if (!x.ok) return;
      const i = x.data.install;
      if (!i || ["failed", "staged"].includes(i.state)) { updatesPage(); return; }
      const bar = progress.querySelector("progress");
      if (bar && i.bytes_total) { bar.max = i.bytes_total; bar.value = i.bytes_done; }
      progress.querySelector("strong").textContent = (STATE_TEXT[i.state] || i.state) + (i.version ? " " + i.version : "");
      const hint = progress.querySelector(".hint");
      if (hint) hint.textContent = [i.bytes_total ? bytes(i.bytes_done) + " of " + bytes(i.bytes_total) : null,
        i.bytes_per_second ? bytes(i.bytes_per_second) + "/s" : null, i.eta_seconds ? "about " + Math.ceil(i.eta_seconds / 60) + " min left" : null].filter(Boolean).join(" · ");
    }, 1500, progress);
  }
  const history = u.history || [];
  settingsShell("updates", pageHead("Updates", "Hearth updates itself in a spare system slot and switches over on restart. If the new version does not start properly, it goes back to the old one by itself."),
    card("now-title", "This device", null,
      h("dl", { class: "facts" },
        h("dt", {}, "Version"), h("dd", {}, u.current_version),
        h("dt", {}, "Board"), h("dd", {}, u.board),
        u.slot ? [h("dt", {}, "Running from"), h("dd", {}, "slot " + u.slot.toUpperCase())] : null,
        h("dt", {}, "Last check"), h("dd", {}, u.last_check ? when(u.last_check) : "never")),
      u.last_error ? h("p", { class: "error" }, "The last check failed: " + u.last_error) : null,
      u.last_rollback ? h("p", { class: "notice", role: "status" }, "On " + when(u.last_rollback.at) + " version " + u.last_rollback.failed_version + " did not start properly, so Hearth went back to the previous version. " + (u.last_rollback.reason || "")) : null,
      u.available ? h("div", { class: "available" }, h("p", {}, h("strong", {}, "Version " + u.available.version + " is available"), u.available.size ? " (" + bytes(u.available.size) + ")" : ""),
        u.available.notes ? h("p", { class: "plot" }, u.available.notes) : null) : h("p", {}, u.channel_configured ? "This is the newest version on the " + u.channel + " channel." : "No update channel is configured, so Hearth never checks for updates."),
      progress,
      u.install_note && !u.can_install ? h("p", { class: "hint" }, u.install_note) : null,
      h("div", { class: "actions" }, u.channel_configured ? check : null, u.available && !running ? install : null), err, status),
    card("settings-title", "Settings", "The device only fetches a small list of versions from the channel; see Privacy for exactly what it sends.", form),
    card("upload-title", "Install from a file", "For a device without internet: download the update file on another computer and upload it here. Its signature is checked before anything is written.", uploadForm),
    card("history-title", "History", null, history.length
      ? h("ul", { class: "list" }, history.map((x) => h("li", {}, h("span", {}, h("strong", {}, x.from_version + " → " + x.to_version), " ", h("span", { class: "tag" }, OUTCOME_TEXT[x.outcome] || x.outcome),
          h("span", { class: "hint" }, when(x.at) + (x.note ? " · " + x.note : ""))))))
      : h("p", { class: "muted" }, "No updates installed yet.")));
}

// ---------- DLNA ----------

export async function dlnaPage() {
  const [r, libsR] = await Promise.all([api("GET", "/api/v1/dlna"), api("GET", "/api/v1/libraries")]);
  const libs = listOf(libsR);
  if (!r.ok) {
    settingsShell("dlna", pageHead("DLNA", "DLNA lets TVs, consoles and music players on your home network browse and play your libraries without signing in."),
      card("dlna-na", "Not available", null, h("p", {}, r.status === 404 ? "This version of Hearth has no DLNA settings page yet. DLNA can be turned on or off under Network & Remote Access." : r.error.message)));
    return;
  }
  const d = r.data;
  const err = errorBox("dlna-error");
  const status = statusLine("dlna-status");
  const enabled = checkbox("dlna-enabled", "Share with DLNA players on the home network", d.enabled);
  const boxes = libs.map((l) => checkbox("dlna-lib-" + l.id, l.name + " (" + kindName(l.kind) + ")", (d.libraries || []).includes(l.id)));
  const save = h("button", { type: "submit", class: "primary" }, "Save");
  const form = h("form", { novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    const chosen = libs.filter((l) => document.getElementById("dlna-lib-" + l.id).checked).map((l) => l.id);
    busy(save, true);
    const x = await api("PUT", "/api/v1/dlna", { enabled: enabled.querySelector("input").checked, libraries: chosen });
    busy(save, false);
    if (!x.ok) { showError(err, x.error); return; }
    showError(err, null);
    status.textContent = x.data.active ? "Saved. DLNA players on the home network can see the chosen libraries." : "Saved. DLNA is off.";
  } }, enabled, h("fieldset", {}, h("legend", {}, "Libraries DLNA players may see"), boxes.length ? boxes : h("p", { class: "muted" }, "No libraries yet.")), err, h("div", { class: "actions" }, save), status);
  settingsShell("dlna", pageHead("DLNA", "DLNA lets TVs, consoles and music players on your home network browse and play without signing in. They see everything in the libraries chosen here, with no age limits: choose carefully in a home with children."),
    h("dl", { class: "facts card" }, h("dt", {}, "Appears on TVs as"), h("dd", {}, d.friendly_name || "—"), h("dt", {}, "Now"), h("dd", {}, d.active ? "on" : "off")),
    d.home_mode ? h("p", { class: "notice", role: "status" }, d.warning || "Home mode is on, so DLNA was switched off: DLNA players cannot be limited by age. Turn it back on only if every DLNA device is for grown-ups.") : (d.warning ? h("p", { class: "notice" }, d.warning) : null),
    card("dlna-title", "Sharing", null, form));
}

// ---------- privacy ----------

// The list comes from GET /api/v1/privacy: the same list the image tier's packet capture is
// checked against, so this page cannot claim less than the device sends.
function flowItem(f) {
  return h("li", { class: "flow", id: "flow-" + f.id },
    h("h3", {}, f.name, " ", h("span", { class: "tag" }, f.enabled ? "on" : "off")),
    h("dl", { class: "facts" },
      h("dt", {}, "To"), h("dd", {}, f.destination),
      h("dt", {}, "How"), h("dd", {}, f.protocol),
      h("dt", {}, "Carries"), h("dd", {}, f.carries),
      h("dt", {}, "Last contact"), h("dd", {}, f.last_contact ? when(f.last_contact) : (f.scope === "internet" ? "never" : "not recorded")),
      h("dt", {}, "To turn it off"), h("dd", {}, f.turn_off)));
}

function timeSyncForm(ts) {
  const err = errorBox("ts-error");
  const status = statusLine("ts-status");
  const radio = (value, label, hint) => h("label", { class: "choice", for: "ts-" + value },
    h("input", { type: "radio", id: "ts-" + value, name: "ts-mode", value, checked: ts.mode === value }),
    h("span", {}, label, hint ? h("span", { class: "hint" }, hint) : null));
  const servers = field("ts-servers", "Your time servers", { value: ts.mode === "custom" ? ts.servers.join(" ") : "", placeholder: "ntp.home.arpa 192.168.1.1" },
    "Host names or addresses, separated by spaces (up to 4).");
  const save = h("button", { type: "submit", class: "primary" }, "Save");
  return h("form", { novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    const mode = document.querySelector("input[name=ts-mode]:checked").value;
    const list = mode === "custom" ? servers.input.value.split(/[\s,]+/).filter(Boolean) : [];
    busy(save, true);
    const x = await api("PUT", "/api/v1/privacy/time-sync", { mode, servers: list });
    busy(save, false);
    if (!x.ok) { showError(err, x.error, mode === "custom" ? servers.input : null); return; }
    showError(err, null);
    status.textContent = mode === "off" ? "Saved. Time sync is off." : "Saved. Time sync asks " + x.data.time_sync.servers.join(", ") + ".";
    privacyPage();
  } },
    h("fieldset", {}, h("legend", {}, "Time sync"),
      radio("default", "Debian's public time servers", "The default: " + (ts.mode === "default" ? ts.servers.join(", ") : "*.debian.pool.ntp.org") + "."),
      radio("custom", "My own time server", "For example your router, if it serves the time."),
      radio("off", "Off", "Nothing is sent; the clock drifts and, without a clock battery, starts at the last saved time.")),
    servers.node, err, h("div", { class: "actions" }, save), status);
}

export async function privacyPage() {
  const r = await api("GET", "/api/v1/privacy");
  const head = pageHead("Privacy", "Exactly what this device sends, where, and when. Everything else — your media, your household, what anyone watches — stays here.");
  if (!r.ok) { settingsShell("privacy", head, h("p", { class: "error", role: "alert" }, r.error.message)); return; }
  const flows = r.data.flows;
  const out = flows.filter((f) => f.scope === "internet");
  const lan = flows.filter((f) => f.scope !== "internet");
  const outOn = out.filter((f) => f.enabled);
  settingsShell("privacy", head,
    card("leaves-title", "What leaves the house", outOn.length ? "Only these, and only with the settings below: " + outOn.map((f) => f.name.toLowerCase()).join(" and ") + "." : "Nothing: every outbound feature is off.",
      h("ul", { class: "flows" }, out.map(flowItem))),
    r.data.time_sync ? card("ts-title", "Time sync", "The device asks a time server for the time so that certificates and schedules work. Point it at your own server, or turn it off.", timeSyncForm(r.data.time_sync)) : null,
    card("lan-title", "What stays on your home network", "Sent only to devices in your home, never beyond your router.",
      h("ul", { class: "flows" }, lan.map(flowItem))),
    card("never-title", "What never leaves", null,
      h("p", {}, "No accounts at a company, no telemetry, no crash reports, no analytics, no advertising, no artwork or metadata look-ups on the internet. Titles, file names, watch history and people's names are never sent. The web app loads nothing from anywhere but this device: no external fonts, scripts or trackers.")));
}

// ---------- system ----------

export async function systemPage() {
  const [s, hist] = await Promise.all([api("GET", "/api/v1/system"), api("GET", "/api/v1/system/history")]);
  if (!s.ok) { settingsShell("system", pageHead("System"), h("p", { class: "error", role: "alert" }, s.error.message)); return; }
  const st = s.data;
  const samples = hist.ok ? hist.data.samples : st.history || [];
  const memTotal = hist.ok ? hist.data.memory_total_bytes : st.memory_total_bytes;
  const temp = st.temperatures && st.temperatures.length ? Math.max(...st.temperatures.map((t) => t.celsius)) : null;
  const graphs = h("div", { class: "graphs" },
    graph("CPU", "%", samples.map((x) => [x.at, x.cpu_percent]), 100, st.cpu_percent.toFixed(0) + " %"),
    graph("Memory", "%", samples.map((x) => [x.at, (x.memory_used_bytes / memTotal) * 100]), 100, bytes(st.memory_used_bytes) + " of " + bytes(st.memory_total_bytes)),
    graph("Temperature", "°C", samples.filter((x) => x.temperature_celsius !== null && x.temperature_celsius !== undefined).map((x) => [x.at, x.temperature_celsius]), 100, temp !== null ? temp.toFixed(0) + " °C" : "no sensor"),
    graph("Disk use", "%", samples.filter((x) => x.disk_total_bytes).map((x) => [x.at, (x.disk_used_bytes / x.disk_total_bytes) * 100]), 100,
      samples.length && samples[samples.length - 1].disk_total_bytes ? bytes(samples[samples.length - 1].disk_used_bytes) + " of " + bytes(samples[samples.length - 1].disk_total_bytes) : ""));
  graphs.id = "sys-graphs";
  // New samples arrive every 10 s: redraw the graphs in place (focus stays where it is).
  poll(async () => {
    const x = await api("GET", "/api/v1/system/history");
    const box = document.getElementById("sys-graphs");
    if (!x.ok || !box) return;
    const ss = x.data.samples;
    const last = ss[ss.length - 1];
    if (!last) return;
    box.replaceChildren(
      graph("CPU", "%", ss.map((p) => [p.at, p.cpu_percent]), 100, last.cpu_percent.toFixed(0) + " %"),
      graph("Memory", "%", ss.map((p) => [p.at, (p.memory_used_bytes / x.data.memory_total_bytes) * 100]), 100, bytes(last.memory_used_bytes) + " of " + bytes(x.data.memory_total_bytes)),
      graph("Temperature", "°C", ss.filter((p) => p.temperature_celsius !== null && p.temperature_celsius !== undefined).map((p) => [p.at, p.temperature_celsius]), 100, last.temperature_celsius !== null && last.temperature_celsius !== undefined ? last.temperature_celsius.toFixed(0) + " °C" : "no sensor"),
      graph("Disk use", "%", ss.filter((p) => p.disk_total_bytes).map((p) => [p.at, (p.disk_used_bytes / p.disk_total_bytes) * 100]), 100, last.disk_total_bytes ? bytes(last.disk_used_bytes) + " of " + bytes(last.disk_total_bytes) : ""));
  }, 10000, graphs);
  settingsShell("system", pageHead("System", "How the device is doing. Graphs show the last hour, one sample every 10 seconds."),
    card("graphs-title", "The last hour", samples.length < 2 ? "Samples build up while Hearth runs; the graphs fill in over the first minutes." : null, graphs),
    card("facts-title", "Device", null, h("dl", { class: "facts" },
      h("dt", {}, "Name"), h("dd", {}, st.hostname), h("dt", {}, "System"), h("dd", {}, st.os + " · kernel " + st.kernel),
      h("dt", {}, "Processors"), h("dd", {}, st.cpu_count + " · load " + st.load.map((l) => l.toFixed(2)).join(", ")),
      h("dt", {}, "Up for"), h("dd", {}, upFor(st.uptime_secs) + " (Hearth: " + upFor(st.service_uptime_secs) + ", using " + bytes(st.service_rss_bytes) + ")"))),
    card("disks-use-title", "Storage", null, h("ul", { class: "list" }, st.disks.map((d) => h("li", {},
      h("div", { class: "grow" }, h("strong", {}, d.mount_point), " ", h("span", { class: "tag" }, d.filesystem),
        h("span", { class: "hint" }, bytes(d.total_bytes - d.available_bytes) + " used of " + bytes(d.total_bytes)),
        progressBar(d.total_bytes - d.available_bytes, d.total_bytes, d.mount_point + " space used")))))));
}

function upFor(s) {
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  return d ? d + " d " + hh + " h" : hh ? hh + " h " + m + " min" : m + " min";
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

// A small line graph over the last hour; a table equivalent is offered to screen readers.
function graph(title, unit, points, max, now) {
  const W = 300, H = 100;
  const end = points.length ? points[points.length - 1][0] : Date.now() / 1000;
  const start = end - 3600;
  const x = (t) => ((t - start) / 3600) * W;
  const y = (v) => H - (Math.min(max, Math.max(0, v)) / max) * H;
  const chart = svg("svg", { viewBox: "0 0 " + W + " " + H, class: "chart", role: "img", "aria-label": title + " over the last hour, now " + now, preserveAspectRatio: "none" });
  for (const g of [25, 50, 75]) chart.append(svg("line", { x1: "0", x2: String(W), y1: String(y(g)), y2: String(y(g)), class: "gridline" }));
  if (points.length > 1) {
    const d = points.map(([t, v], i) => (i ? "L" : "M") + x(t).toFixed(1) + " " + y(v).toFixed(1)).join(" ");
    chart.append(svg("path", { d: d + " L" + x(end).toFixed(1) + " " + H + " L" + x(points[0][0]).toFixed(1) + " " + H + " Z", class: "area" }));
    chart.append(svg("path", { d, class: "line" }));
  }
  const peak = points.length ? Math.max(...points.map((p) => p[1])) : null;
  return h("figure", { class: "graph" }, h("figcaption", {}, h("strong", {}, title), " ", h("span", { class: "hint" }, now + (peak !== null ? " · peak " + peak.toFixed(0) + " " + unit : ""))), chart,
    h("div", { class: "axis", "aria-hidden": "true" }, h("span", {}, "60 min ago"), h("span", {}, "30"), h("span", {}, "now")));
}


// ---------- playback ----------

// How films reach viewers: the limit for viewers outside the home, and the converter.
export async function playbackPage() {
  const r = await api("GET", "/api/v1/settings/playback");
  const err = errorBox("playback-error");
  if (!r.ok) { settingsShell("playback", pageHead("Playback"), err); showError(err, r.error); return; }
  const p = r.data;
  const status = statusLine("playback-status");
  const label = (b) => b === 0 ? "No limit (Original)" : b / 1000000 + " Mbit/s";
  const select = h("select", { id: "remote-bitrate" }, p.remote_choices.map((b) => h("option", { value: String(b), selected: b === p.remote_bitrate }, label(b))));
  const save = h("button", { type: "submit", class: "primary" }, "Save");
  const form = h("form", { novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    busy(save, true);
    const x = await api("PUT", "/api/v1/settings/playback", { remote_bitrate: Number(select.value) });
    busy(save, false);
    if (!x.ok) { showError(err, x.error); return; }
    showError(err, null);
    status.textContent = x.data.remote_bitrate ? "Saved. Viewers outside your home get at most " + label(x.data.remote_bitrate) + "; films above it are converted down." : "Saved. Viewers outside your home get films as they are.";
  } },
    h("div", { class: "field" }, h("label", { for: "remote-bitrate" }, "Limit for viewers outside your home"), select,
      h("p", { class: "hint" }, "A film above this is converted down for them, so it plays on a slow connection and your upload is not used up. At home, films always play at full quality.")),
    err, h("div", { class: "actions" }, save), status);
  settingsShell("playback", pageHead("Playback", "Films a player cannot take as they are — another container, sound or picture format — are converted while they play."),
    h("dl", { class: "facts card" },
      h("dt", {}, "Converter"), h("dd", {}, p.ffmpeg ? "ffmpeg (" + p.ffmpeg + ")" : "not installed: films that need converting will not play (Debian: apt install ffmpeg)"),
      h("dt", {}, "Converted pictures"), h("dd", {}, "up to " + p.max_transcode_height + "p, " + p.transcodes + " at once"),
      h("dt", {}, "Converting now"), h("dd", {}, String(p.running))),
    card("playback-title", "Viewers outside your home", null, form));
}
