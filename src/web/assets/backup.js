// Backups: the owner's page (download, schedule, restore), the printable emergency kit, and
// the setup wizard's "restore from a backup". The passphrase goes to the device only in the
// Hearth-Passphrase header (percent-encoded) or a JSON body, never in an address.
import { h, api, render, field, errorBox, showError, busy, radio, checkbox, formCard, bytes, when, ago, session } from "./core.js";
import { settingsShell, card, pageHead } from "./settings.js";

// Sends a backup file as the raw body; the answer is parsed like api()'s.
async function upload(path, file, passphrase, extra) {
  const headers = Object.assign({ "Content-Type": "application/octet-stream", "Hearth-Passphrase": encodeURIComponent(passphrase) }, extra || {});
  let resp;
  try {
    resp = await fetch(path, { method: "POST", credentials: "same-origin", headers, body: file });
  } catch (e) {
    return { ok: false, error: { code: "offline", message: "Hearth cannot be reached. Check that the device is on and connected." } };
  }
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  return { ok: resp.ok, status: resp.status, data, error: resp.ok ? null : (data && data.error) || { message: "The server answered " + resp.status + "." } };
}

// After a restore the server restarts on its own; wait until it answers as the restored device.
async function waitForRestart(statusLine) {
  for (let i = 0; i < 240; i++) {
    await new Promise((r) => setTimeout(r, 500));
    const s = await api("GET", "/api/v1/setup");
    if (s.ok && s.data.claimed) return true;
    statusLine.textContent = "Restoring… (" + Math.round(i / 2) + " s)";
  }
  return false;
}

function restoredCard(manifest) {
  render(h("section", { class: "card narrow", id: "restored" },
    h("h1", {}, "Restored"),
    h("p", {}, "This Hearth is back as \u201c" + (manifest.server_name || "Hearth") + "\u201d, as it was on " + when(manifest.created_at) + " (Hearth " + manifest.hearth_version + "). Sign in with the owner's password from then. Libraries come back online when their disks are plugged in."),
    h("a", { class: "button primary", href: "#/", onclick: () => setTimeout(() => location.reload(), 0) }, "Sign in")));
}

const MIN = 10;

function passphrasePair(idPrefix, hint) {
  const p = field(idPrefix + "-pass", "Passphrase", { type: "password", autocomplete: "new-password", maxlength: "1024" }, hint);
  const p2 = field(idPrefix + "-pass2", "Passphrase again", { type: "password", autocomplete: "new-password", maxlength: "1024" });
  return { p, p2, check(err) {
    if (p.input.value.length < MIN) { showError(err, { message: "Use at least " + MIN + " characters: a few unrelated words are easy to remember." }, p.input); return null; }
    if (p.input.value !== p2.input.value) { showError(err, { message: "The two passphrases differ." }, p2.input); return null; }
    return p.input.value;
  } };
}

export async function backupsPage() {
  const r = await api("GET", "/api/v1/backup");
  if (!r.ok) { settingsShell("backups", pageHead("Backups"), card("b-err", "Backups", r.error.message)); return; }
  const v = r.data;
  const s = v.status;
  const last = [s.last_at, s.last_download_at].filter((x) => x).sort().pop();
  const summary = h("div", { id: "backup-summary" },
    v.warning ? h("p", { class: "notice", id: "backup-warning", role: "status" }, v.warning) : null,
    h("p", {}, last ? "Last backup: " + when(last) + " (" + ago(last) + ")" : "No backup has been made yet."),
    s.last_at ? h("p", { class: "muted" }, "Last scheduled backup: " + s.last_file + ", " + bytes(s.last_size) + ".") : null,
    s.last_download_at ? h("p", { class: "muted" }, "Last download: " + when(s.last_download_at) + ", " + bytes(s.last_download_size) + ".") : null,
    s.last_error ? h("p", { class: "error" }, "The last scheduled backup failed: " + s.last_error) : null,
    h("p", {}, h("a", { href: "#/settings/backups/kit" }, "Print the emergency kit")));

  // Download now.
  const dl = passphrasePair("dl", "Needed to restore. Hearth keeps no copy: write it down (the emergency kit has a place for it).");
  const dlErr = errorBox("dl-error");
  const dlBtn = h("button", { class: "primary", type: "submit" }, "Download a backup");
  const dlForm = h("form", { novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    const pass = dl.check(dlErr);
    if (!pass) return;
    busy(dlBtn, true);
    let resp;
    try {
      resp = await fetch("/api/v1/backup/download", { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ passphrase: pass }) });
    } catch (x) { busy(dlBtn, false); showError(dlErr, { message: "Hearth cannot be reached." }); return; }
    if (!resp.ok) {
      busy(dlBtn, false);
      let d = null; try { d = await resp.json(); } catch (x) { d = null; }
      showError(dlErr, (d && d.error) || { message: "The server answered " + resp.status + "." }, dl.p.input);
      return;
    }
    const blob = await resp.blob();
    busy(dlBtn, false);
    const name = (/filename="([^"]+)"/.exec(resp.headers.get("Content-Disposition") || "") || [])[1] || "hearth-backup.hbk";
    const a = h("a", { href: URL.createObjectURL(blob), download: name, id: "backup-file-link" }, "Save " + name + " (" + bytes(blob.size) + ")");
    dlForm.querySelector(".actions").after(h("p", { class: "notice" }, a));
    a.click();
  } }, dl.p.node, dl.p2.node, dlErr, h("div", { class: "actions" }, dlBtn));

  // Schedule.
  const folder = field("sched-folder", "Folder", { value: v.folder || "", placeholder: "/media/usb-stick/hearth-backups", spellcheck: "false", autocapitalize: "none" }, "A folder on a disk plugged into this device (not the SD card). It must exist.");
  const every = h("fieldset", {}, h("legend", {}, "How often"),
    radio("sched-every", "off", "Off", null, v.every === "off"),
    radio("sched-every", "daily", "Every day", null, v.every === "daily"),
    radio("sched-every", "weekly", "Every week", null, v.every === "weekly"));
  const keep = field("sched-keep", "Keep the last", { type: "number", min: "1", max: "365", value: String(v.keep || 7) }, "Older scheduled backups in the folder are deleted.");
  const sp = passphrasePair("sched", v.has_passphrase ? "Leave empty to keep the current passphrase." : "Needed to restore these backups. Only a key derived from it is kept on the device.");
  const schedErr = errorBox("sched-error");
  const schedBtn = h("button", { type: "submit" }, "Save schedule");
  const runBtn = h("button", { type: "button", onclick: async () => {
    busy(runBtn, true);
    const x = await api("POST", "/api/v1/backup/run");
    busy(runBtn, false);
    if (!x.ok) { showError(schedErr, x.error); return; }
    backupsPage();
  } }, "Back up now");
  const files = h("ul", { class: "list", id: "backup-files", "aria-label": "Backups in the folder" },
    (v.files || []).slice().reverse().map((f) => h("li", {}, h("span", {}, f.name), h("span", { class: "muted" }, bytes(f.size)))));
  const schedForm = h("form", { novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    let pass = null;
    if (sp.p.input.value || !v.has_passphrase) { pass = sp.check(schedErr); if (!pass) return; }
    busy(schedBtn, true);
    const x = await api("PUT", "/api/v1/backup/schedule", {
      folder: folder.input.value.trim(), every: schedForm.querySelector("input[name=sched-every]:checked").value,
      keep: Number(keep.input.value), passphrase: pass,
    });
    busy(schedBtn, false);
    if (!x.ok) { showError(schedErr, x.error, folder.input); return; }
    backupsPage();
  } }, folder.node, every, keep.node, sp.p.node, sp.p2.node, schedErr, h("div", { class: "actions" }, schedBtn, v.has_passphrase && v.folder ? runBtn : null), files);

  // Restore.
  const rf = h("input", { type: "file", id: "restore-file", accept: ".hbk,application/octet-stream" });
  const rp = field("restore-pass", "The backup's passphrase", { type: "password", autocomplete: "off", maxlength: "1024" });
  const confirm = checkbox("restore-confirm", "Replace everything on this Hearth with the backup: people, settings, history and certificates.", false,
    "Whatever changed since the backup was made is lost. Media files on your disks are not touched.");
  const rErr = errorBox("restore-error");
  const rStatus = h("p", { class: "muted", role: "status" });
  const rBtn = h("button", { class: "danger", type: "submit" }, "Restore");
  const rForm = h("form", { novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    if (!rf.files.length) { showError(rErr, { message: "Choose a backup file (it ends in .hbk)." }, rf); return; }
    if (!rp.input.value) { showError(rErr, { message: "Enter the backup's passphrase." }, rp.input); return; }
    if (!confirm.querySelector("input").checked) { showError(rErr, { message: "Tick the box to confirm that everything is replaced." }); return; }
    busy(rBtn, true);
    rStatus.textContent = "Checking the backup…";
    const x = await upload("/api/v1/backup/restore?confirm=replace-everything", rf.files[0], rp.input.value);
    if (!x.ok) { busy(rBtn, false); rStatus.textContent = ""; showError(rErr, x.error, rp.input); return; }
    rStatus.textContent = "Verified. Restoring…";
    await waitForRestart(rStatus);
    restoredCard(x.data.manifest);
  } }, h("label", { for: "restore-file" }, "Backup file"), rf, rp.node, confirm, rErr, rStatus, h("div", { class: "actions" }, rBtn));

  settingsShell("backups",
    pageHead("Backups", "Everything the household set up in Hearth — people, PINs, sharing, history, settings, certificates — in one encrypted file. Your media files are not in it: they stay on your disks."),
    card("status-title", "Status", null, summary),
    card("download-title", "Download a backup", "Made now, while Hearth keeps running, and encrypted with the passphrase you choose.", dlForm),
    card("schedule-title", "Scheduled backups", "Hearth writes a backup to a folder on a USB disk every day or week and keeps the last few.", schedForm),
    card("restore-title", "Restore", "Every part of the file is checked before anything is changed; then Hearth restarts as the backup's device.", rForm));
}

// The emergency kit: one printable page with what a restore needs. The passphrase can be
// written in by hand, or typed here to print it; it is never sent to the device.
export async function kitPage() {
  const r = await api("GET", "/api/v1/backup");
  const v = r.ok ? r.data : {};
  const name = (session.status && session.status.server_name) || "Hearth";
  const typed = h("span", { class: "kit-pass", id: "kit-pass" }, "");
  const input = h("input", { id: "kit-pass-input", type: "password", autocomplete: "off", oninput: () => { typed.textContent = input.value; } });
  render(h("section", { class: "card narrow kit", id: "emergency-kit" },
    h("h1", {}, "Hearth emergency kit"),
    h("p", {}, "Keep this page somewhere safe, away from the device. It is what you need to bring \u201c" + name + "\u201d back after its SD card fails."),
    h("dl", {},
      h("dt", {}, "Device"), h("dd", {}, name),
      h("dt", {}, "Printed"), h("dd", {}, when(Math.floor(Date.now() / 1000))),
      h("dt", {}, "Scheduled backups"), h("dd", {}, v.every && v.every !== "off" ? (v.every === "daily" ? "Every day" : "Every week") + " to " + v.folder + ", last " + v.keep + " kept" : "Not scheduled: download backups from Settings → Backups"),
      h("dt", {}, "Backup passphrase"), h("dd", {}, typed, h("span", { class: "kit-blank" }, " "))),
    h("h2", {}, "To restore"),
    h("ol", {},
      h("li", {}, "Flash a new SD card with the Hearth image and start the device."),
      h("li", {}, "Open http://hearth.local from a computer on the same network and choose \u201cRestore from a backup\u201d."),
      h("li", {}, "Enter the setup code shown on the device's console, choose the newest backup file (hearth-backup-….hbk on the USB disk, or a downloaded one) and enter the passphrase above."),
      h("li", {}, "Hearth checks the file, restarts, and comes back with everyone, their history and settings. Sign in with the owner's password.")),
    h("div", { class: "no-print" },
      h("label", { for: "kit-pass-input" }, "Type the passphrase to print it (optional; it stays in this browser)"), input,
      h("div", { class: "actions" }, h("button", { type: "button", class: "primary", onclick: () => window.print() }, "Print"), h("a", { href: "#/settings/backups" }, "Back")))));
}

// A JSON POST with the setup code in its header; answered like api()'s.
async function setupPost(path, setupCode, body) {
  let resp;
  try {
    resp = await fetch(path, { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json", "Hearth-Setup-Code": setupCode }, body: JSON.stringify(body) });
  } catch (e) {
    return { ok: false, error: { code: "offline", message: "Hearth cannot be reached. Check that the device is on and connected." } };
  }
  let data = null;
  try { data = await resp.json(); } catch (e) { data = null; }
  return { ok: resp.ok, status: resp.status, data, error: resp.ok ? null : (data && data.error) || { message: "The server answered " + resp.status + "." } };
}

// One backup the device found: what its manifest says, or why it cannot be restored.
function foundChoice(b, i) {
  const f = b.facts;
  const where = b.place + ": " + b.path;
  const input = h("input", { type: "radio", name: "found-backup", value: b.id, id: "found-" + i, disabled: !f, "aria-describedby": "found-" + i + "-where" });
  const title = f
    ? "\u201c" + (f.server_name || "Hearth") + "\u201d, made " + when(f.created_at) + " by Hearth " + f.hearth_version + " on " + f.board + " (" + bytes(b.size) + ")"
    : b.path + " (" + bytes(b.size) + ")";
  return h("label", { class: "choice" + (f ? "" : " muted"), for: "found-" + i }, input,
    h("span", {}, title,
      h("span", { class: "hint", id: "found-" + i + "-where" }, where),
      b.problem ? h("span", { class: "hint error" }, b.problem.message) : null));
}

// The wizard of an unclaimed device: restore instead of starting fresh, from a backup on a
// disk plugged into the device, or from a file on this computer.
export function wizardRestore(back) {
  const code = field("restore-code", "Setup code", { class: "code", autocomplete: "one-time-code", autocapitalize: "characters", spellcheck: "false", placeholder: "XXXX-XXXX-XXXX", maxlength: "20" },
    "Printed on the device's console when it starts.");
  const pass = field("restore-pass", "The backup's passphrase", { type: "password", autocomplete: "off", maxlength: "1024" }, "The emergency kit has it.");
  const found = h("div", { id: "found-backups", role: "radiogroup", "aria-label": "Backups found on the disks" });
  const findStatus = h("p", { class: "muted", role: "status", id: "find-status" });
  const file = h("input", { type: "file", id: "restore-file", accept: ".hbk,application/octet-stream", onchange: () => {
    for (const r of found.querySelectorAll("input[name=found-backup]")) r.checked = false;
  } });
  const err = errorBox("restore-error");
  const status = h("p", { class: "muted", role: "status", id: "restore-status" });
  const go = h("button", { class: "primary", type: "submit" }, "Restore");
  const backBtn = h("button", { type: "button", onclick: back }, "Back");
  const checkCode = () => {
    if (code.input.value.replace(/[\s-]/g, "").length !== 12) { showError(err, { message: "The setup code has 12 characters, like ACDE-FGHJ-KMNP." }, code.input); return false; }
    if (!pass.input.value) { showError(err, { message: "Enter the backup's passphrase." }, pass.input); return false; }
    return true;
  };
  const findBtn = h("button", { type: "button", id: "find-backups", onclick: async () => {
    if (!checkCode()) return;
    showError(err, null);
    busy(findBtn, true);
    findStatus.textContent = "Looking on the disks plugged into this Hearth…";
    const r = await setupPost("/api/v1/setup/backups", code.input.value.trim(), { passphrase: pass.input.value });
    busy(findBtn, false);
    found.replaceChildren();
    if (!r.ok) { findStatus.textContent = ""; showError(err, r.error, r.error.code === "wrong_setup_code" ? code.input : pass.input); return; }
    const list = r.data.backups;
    const missed = r.data.places.filter((p) => p.problem).map((p) => p.label + ": " + p.problem);
    const openable = list.filter((b) => b.facts).length;
    findStatus.textContent = list.length === 0
      ? "No backup was found on " + (r.data.places.length ? r.data.places.map((p) => p.label).join(", ") : "any disk") + ". Plug in the disk with the backups and look again, or choose a file below."
      : list.length + (list.length === 1 ? " backup" : " backups") + " found" + (openable < list.length ? ", " + openable + " opened with this passphrase" : "") + ". Choose one.";
    if (missed.length) findStatus.textContent += " Not searched: " + missed.join("; ") + ".";
    found.append(...list.map(foundChoice));
    const first = found.querySelector("input[name=found-backup]:not([disabled])");
    if (first) { first.checked = true; file.value = ""; }
  } }, "Look for backups on disks");
  render(formCard("Restore from a backup", "Bring back a Hearth whose SD card failed: its owner, people, history, settings and certificates. The backup is checked completely before anything is changed.",
    [code.node, pass.node,
      h("fieldset", {}, h("legend", {}, "A backup on a disk plugged into this Hearth"), h("div", { class: "actions" }, findBtn), findStatus, found),
      h("fieldset", {}, h("legend", {}, "Or a backup file from this computer"), h("label", { for: "restore-file" }, "Backup file (hearth-backup-….hbk)"), file),
      err, status], [go, backBtn], async () => {
      if (!checkCode()) return;
      const chosen = found.querySelector("input[name=found-backup]:checked");
      if (!chosen && !file.files.length) { showError(err, { message: "Look for backups on the disks and choose one, or choose a backup file." }, file); return; }
      showError(err, null);
      busy(go, true);
      status.textContent = "Checking the backup…";
      const r = chosen
        ? await setupPost("/api/v1/setup/backups/restore", code.input.value.trim(), { id: chosen.value, passphrase: pass.input.value })
        : await upload("/api/v1/setup/restore", file.files[0], pass.input.value, { "Hearth-Setup-Code": code.input.value.trim() });
      if (!r.ok) { busy(go, false); status.textContent = ""; showError(err, r.error, r.error.code === "wrong_setup_code" ? code.input : pass.input); return; }
      status.textContent = "Verified. Restoring…";
      await waitForRestart(status);
      restoredCard(r.data.manifest);
    }));
}
