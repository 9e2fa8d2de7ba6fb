// Settings, one place: each page says in plain words what a setting does and who it affects.
// This file: the settings frame, Users & Sharing (with viewing schedules), Devices,
// Network, Security (certificates, two-factor, audit log) and the account page.
import { h, api, render, field, errorBox, showError, busy, radio, checkbox, statusLine, session, listOf, roleName, when, ago, isOwner, prefs } from "./core.js";
import { restrictionSummary } from "./restrictions.js";

export const SECTIONS = [
  ["users", "Users & Sharing", true], ["devices", "Devices", false], ["network", "Network & Remote Access", true],
  ["security", "Security", false], ["libraries", "Disks & Libraries", true], ["playback", "Playback", true], ["updates", "Updates", true],
  ["dlna", "DLNA", true], ["backups", "Backups", true], ["privacy", "Privacy", false], ["system", "System", true],
];

// The settings frame: a side menu (a top strip on phones) and the page.
export function settingsShell(active, ...content) {
  const owner = isOwner();
  const links = SECTIONS.filter(([, , ownerOnly]) => owner || !ownerOnly).map(([id, label]) =>
    h("li", {}, h("a", { href: "#/settings/" + id, "aria-current": id === active ? "page" : null }, label)));
  render(h("div", { class: "wide settings" },
    h("nav", { class: "side", "aria-label": "Settings" }, h("p", { class: "side-title" }, "Settings"), h("ul", {}, links)),
    h("div", { class: "settings-body" }, ...content)));
}

export function card(id, title, intro, ...body) {
  return h("section", { class: "card", "aria-labelledby": id }, h("h2", { id }, title), intro ? h("p", { class: "muted" }, intro) : null, ...body);
}

export function pageHead(title, intro) {
  return h("header", { class: "page-head" }, h("h1", { id: "title" }, title), intro ? h("p", { class: "muted" }, intro) : null);
}

// ---------- devices ----------

export async function devicesPage() {
  const r = await api("GET", "/api/v1/devices");
  const err = errorBox("devices-error");
  const rows = (r.ok ? r.data : []).map((d) => {
    const revoke = h("button", { type: "button", class: "danger", "aria-label": (d.current ? "Sign out " : "Revoke ") + d.name, onclick: async () => {
      busy(revoke, true);
      const x = await api("DELETE", "/api/v1/devices/" + d.id);
      busy(revoke, false);
      if (!x.ok) { showError(err, x.error); return; }
      if (d.current) { location.hash = "#/"; window.dispatchEvent(new HashChangeEvent("hashchange")); } else devicesPage();
    } }, d.current ? "Sign out" : "Revoke");
    return h("li", {},
      h("span", {}, h("strong", {}, d.name), d.current ? h("span", { class: "tag" }, "this device") : null,
        h("span", { class: "hint" }, d.platform + " · last seen " + ago(d.last_seen) + " from " + d.last_address)),
      revoke);
  });
  settingsShell("devices", pageHead("Devices", "Every browser or app signed in " + (isOwner() ? "to this Hearth" : "as you") + ". Revoking one signs it out at once; it needs the password to come back."),
    h("section", { class: "card" }, r.ok ? h("ul", { class: "list" }, rows) : null, err));
  if (!r.ok) showError(err, r.error);
}

// ---------- network ----------

// What the router said about reaching Hearth from outside, the owner's choice of automatic
// or manual port, and the reachability check.
function reachCard(v) {
  const m = v.mapping || {};
  const err = errorBox("reach-error");
  const status = statusLine("reach-status");
  const phase = { off: "not asked of the router", searching: "looking for the router…", mapped: "port open on the router", manual: "forwarded by hand", failed: "no port open" }[m.phase] || m.phase;
  const lease = m.lease_secs === 0 ? "until removed" : m.lease_secs ? Math.round(m.lease_secs / 60) + " min, renewed at half-time" + (m.renewed_at ? " (last " + ago(m.renewed_at) + ")" : "") : "—";
  const warnings = [...(v.warnings || [])].map((w) => h("li", { class: "warn", "data-code": w.code }, w.message));
  const port = field("reach-port", "Public port you forwarded on the router", { type: "number", min: "1", max: "65535", value: v.settings.manual_public_port || "" }, "Only with a port forwarded by hand.");
  const name = field("reach-name", "Public name (optional)", { value: v.settings.public_name || "", spellcheck: "false", autocapitalize: "none", maxlength: "253" }, "A name you control that points at your home, like home.example.org. Invite links use it.");
  const save = h("button", { type: "submit" }, "Save port settings");
  const form = h("form", { novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    const manual = form.querySelector("input[name=portmode]:checked").value === "manual";
    const body = { port_mode: manual ? "manual" : "automatic", manual_public_port: port.input.value ? Number(port.input.value) : null, public_name: name.input.value.trim() || null };
    busy(save, true);
    const r = await api("PUT", "/api/v1/reach/settings", body);
    busy(save, false);
    if (!r.ok) { showError(err, r.error, manual ? port.input : name.input); return; }
    status.textContent = "Saved.";
    networkPage();
  } },
    h("fieldset", {}, h("legend", {}, "Opening the port"),
      radio("portmode", "automatic", "Automatic", "Hearth asks the router (UPnP) to open a port while remote access is on, and closes it when it goes off.", v.settings.port_mode === "automatic"),
      radio("portmode", "manual", "By hand", "You forwarded a port on the router yourself; Hearth asks the router for nothing.", v.settings.port_mode === "manual")),
    port.node, name.node, err, h("div", { class: "actions" }, save), status);
  const verdict = h("p", { id: "reach-verdict", "aria-live": "polite" }, v.last_check ? v.last_check.message : "");
  const checkBtn = h("button", { type: "button", onclick: async () => {
    busy(checkBtn, true);
    const r = await api("POST", "/api/v1/reach/check");
    busy(checkBtn, false);
    verdict.textContent = r.ok ? r.data.message : r.error.message;
  } }, "Check reachability");
  return h("section", { class: "card", "aria-labelledby": "reach-title" }, h("h2", { id: "reach-title" }, "Reaching Hearth from outside"),
    h("dl", { class: "facts" },
      h("dt", {}, "Address for friends"), h("dd", { id: "reach-url" }, v.public_url || ("none — " + (v.not_reachable_because || ""))),
      h("dt", {}, "Router"), h("dd", {}, m.gateway ? m.gateway.name + " at " + m.gateway.address + " (UPnP)" : "none found"),
      h("dt", {}, "Internet address"), h("dd", {}, m.external_address || "unknown"),
      h("dt", {}, "Port"), h("dd", { id: "reach-port-state" }, phase + (v.public_port ? ": " + v.public_port + " → " + v.internal_port : "")),
      h("dt", {}, "Lease"), h("dd", {}, lease),
      m.error ? h("dt", {}, "Problem") : null, m.error ? h("dd", {}, m.error) : null),
    warnings.length ? h("ul", { class: "warnings", "aria-label": "What stops friends reaching Hearth" }, warnings) : null,
    h("div", { class: "actions" }, checkBtn), verdict, form);
}

export async function networkPage() {
  const [net, reach] = await Promise.all([api("GET", "/api/v1/settings/network"), api("GET", "/api/v1/reach")]);
  const err = errorBox("net-error");
  if (!net.ok) { settingsShell("network", pageHead("Network & Remote Access"), err); showError(err, net.error); return; }
  const n = net.data;
  const list = (id, label, values, hint) => field(id, label, { value: (values || []).join(", "), spellcheck: "false", autocapitalize: "none" }, hint);
  const lanExtra = list("lan-networks", "Extra home networks", n.lan_networks, "Networks (like 192.168.2.0/24) to treat as home, besides the ones Hearth found itself.");
  const deny = list("ip-deny", "Blocked addresses", n.ip_deny, "Addresses or networks refused before anything else.");
  const proxies = list("proxies", "Trusted reverse proxies", n.trusted_proxies, "Only these may tell Hearth the real client address (X-Forwarded-For).");
  const save = h("button", { class: "primary", type: "submit" }, "Save");
  const status = statusLine("net-status");
  const split = (v) => v.split(",").map((x) => x.trim()).filter(Boolean);
  const form = h("form", { novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    const body = {
      remote_access: form.querySelector("input[name=remote]:checked").value === "on",
      secure_connections: form.querySelector("input[name=secure]:checked").value,
      dlna: form.querySelector("#dlna-on").checked,
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
    h("fieldset", {}, h("legend", {}, "DLNA on the home network"),
      checkbox("dlna-on", "Let TVs and players on the home network browse without signing in (DLNA)", n.dlna, "More under Settings → DLNA.")),
    lanExtra.node, deny.node, proxies.node, err, h("div", { class: "actions" }, save), status);
  settingsShell("network", pageHead("Network & Remote Access", "Who can reach this Hearth, and how. These rules affect every person and device."),
    h("section", { class: "card", "aria-labelledby": "here-title" }, h("h2", { id: "here-title" }, "Where you are"),
      h("dl", { class: "facts" },
        h("dt", {}, "This browser"), h("dd", {}, n.this_client.address + " — " + ({ local: "on this device", lan: "home network", remote: "internet" }[n.this_client.class] || n.this_client.class) + (n.this_client.secure ? ", secure connection" : ", plain connection")),
        h("dt", {}, "Home networks found"), h("dd", {}, (n.detected_lan_networks || []).join(", ") || "none"),
        h("dt", {}, "HTTPS"), h("dd", {}, n.https_port ? "port " + n.https_port : "not available"))),
    h("section", { class: "card", "aria-labelledby": "rules-title" }, h("h2", { id: "rules-title" }, "Rules"), form),
    reach.ok ? reachCard(reach.data) : null);
}

// ---------- users & sharing ----------

export async function usersPage() {
  const [users, invites, home, libs] = await Promise.all([
    api("GET", "/api/v1/users"), api("GET", "/api/v1/invites"), api("GET", "/api/v1/settings/home"), api("GET", "/api/v1/libraries"),
  ]);
  const err = errorBox("users-error");
  if (!users.ok) { settingsShell("users", pageHead("Users & Sharing"), err); showError(err, users.error); return; }
  const libraries = listOf(libs);
  const list = users.data;
  const guest = list.find((u) => u.role === "guest");

  const rows = list.map((u) => {
    const actions = h("span", { class: "actions" });
    if (u.role !== "owner") {
      actions.append(h("a", { class: "button", href: "#/settings/users/" + u.id, "aria-label": "Restrictions: what " + u.username + " may see" }, "Restrictions"));
    }
    // A PIN guards a household profile on shared home devices; friends and the guest have none.
    if (u.role === "owner" || u.role === "managed") {
      const pinBtn = h("button", { type: "button", "aria-label": (u.has_pin ? "Change PIN" : "Set PIN") + " for " + u.username, onclick: () => pinEditor(u, actions) }, u.has_pin ? "Change PIN" : "Set PIN");
      actions.append(pinBtn);
    }
    if (u.role !== "owner") {
      // Suspending stops the person, whatever app or client id they use; their devices are
      // kept and work again once the suspension is lifted.
      const sus = h("button", { type: "button", class: u.suspended ? "" : "danger", "aria-label": (u.suspended ? "Lift the suspension of " : "Suspend ") + u.username, onclick: async () => {
        busy(sus, true);
        const r = await api("PATCH", "/api/v1/users/" + u.id, { suspended: !u.suspended });
        busy(sus, false);
        if (!r.ok) { showError(err, r.error); return; }
        usersPage();
      } }, u.suspended ? "Lift suspension" : "Suspend");
      actions.append(sus);
      const rm = h("button", { type: "button", class: "danger", "aria-label": "Remove " + u.username, onclick: () => {
        const yes = h("button", { type: "button", class: "danger", onclick: async () => {
          busy(yes, true);
          const r = await api("DELETE", "/api/v1/users/" + u.id + "?confirm=true");
          busy(yes, false);
          if (!r.ok) { showError(err, r.error); return; }
          usersPage();
        } }, "Remove " + u.username);
        const no = h("button", { type: "button", onclick: () => usersPage() }, "Cancel");
        actions.replaceChildren(h("span", { class: "hint", role: "alert" }, "This deletes " + u.username + "'s devices and watch history for good."), yes, no);
        no.focus();
      } }, "Remove");
      actions.append(rm);
    }
    return h("li", {}, h("span", {}, h("strong", {}, u.username), " ", h("span", { class: "tag" }, roleName(u.role)),
      u.has_pin ? h("span", { class: "tag" }, "PIN") : null, u.two_factor ? h("span", { class: "tag" }, "2FA") : null,
      u.role === "guest" && !u.enabled ? h("span", { class: "tag" }, "off") : null,
      u.suspended ? h("span", { class: "tag", title: "Cannot sign in; their devices are refused until you lift the suspension" }, "suspended") : null,
      u.role === "managed" || u.role === "guest" ? h("span", { class: "hint" }, restrictionSummary(u)) : null), actions);
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
    usersPage();
  } }, name.node, preset.node, addErr, h("div", { class: "actions" }, add));

  const guestToggle = h("button", { type: "button", onclick: async () => {
    busy(guestToggle, true);
    const r = guest ? await api("PATCH", "/api/v1/users/" + guest.id, { enabled: !guest.enabled }) : await api("POST", "/api/v1/users", { kind: "guest" });
    busy(guestToggle, false);
    if (!r.ok) { showError(err, r.error); return; }
    usersPage();
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
    if (r.data.url) {
      const qr = h("img", { class: "qr", alt: "QR code of the invite link", src: "data:image/svg+xml;charset=utf-8," + encodeURIComponent(r.data.qr_svg || "") });
      linkOut.replaceChildren("Send this link (it works once, for 3 days, also outside your home): ", h("code", {}, r.data.url), r.data.qr_svg ? qr : "");
    } else {
      linkOut.replaceChildren("Send this link (it works once, for 3 days): ", h("code", {}, location.origin + r.data.link), h("span", { class: "hint warn" }, r.data.outside_note || ""));
    }
  } }, who.node, libBoxes.length ? h("fieldset", {}, h("legend", {}, "Libraries to share"), libBoxes) : null, invErr, h("div", { class: "actions" }, inv), linkOut);

  const pending = (invites.ok ? invites.data : []).map((i) => h("li", {}, h("span", {}, i.invitee, h("span", { class: "hint" }, "expires " + new Date(i.expires_at * 1000).toLocaleString())),
    h("button", { type: "button", class: "danger", onclick: async () => { await api("DELETE", "/api/v1/invites/" + i.id); usersPage(); } }, "Withdraw")));

  settingsShell("users", pageHead("Users & Sharing", "Who can use this Hearth, and what each person may see. Restrictions apply everywhere: browsing, search, artwork and playback."),
    h("section", { class: "card", "aria-labelledby": "people-title" }, h("h2", { id: "people-title" }, "People"),
      home.ok && home.data.on ? h("p", { class: "notice", role: "status" }, "Home mode is on (" + home.data.reasons.join("; ") + "): every device must sign in or pick a profile, so children only see what you allow. TVs and players that browse without signing in (DLNA) are switched off, because they cannot be limited by age; you can turn them back on under Settings → DLNA.") : null,
      h("ul", { class: "list" }, rows), err),
    h("section", { class: "card", "aria-labelledby": "add-title" }, h("h2", { id: "add-title" }, "Add a household profile"), addForm),
    h("section", { class: "card", "aria-labelledby": "guest-title" }, h("h2", { id: "guest-title" }, "Guest access"),
      h("p", { class: "muted" }, "A guest profile lets visitors watch without an account of their own. It never has a PIN."), guestToggle),
    h("section", { class: "card", "aria-labelledby": "invite-title" }, h("h2", { id: "invite-title" }, "Invite a friend"),
      h("p", { class: "muted" }, "Friends get their own username and password and see only the libraries you choose."), invForm,
      pending.length ? h("ul", { class: "list", "aria-label": "Pending invites" }, pending) : null));
}

const PRESETS = { "": "No limits", little_kid: "Little kid (up to age 7)", older_kid: "Older kid (up to age 12)", teen: "Teen (up to age 16)" };

function presetSelect(id, value) {
  const select = h("select", { id, name: id }, Object.entries(PRESETS).map(([k, v]) => h("option", { value: k, selected: k === value }, v)));
  return { select, node: h("div", {}, h("label", { for: id }, "What they may see"),
    h("span", { class: "hint" }, "Presets limit films and TV by age rating across rating systems (MPA, BBFC, FSK, …), hide unrated titles and common unsuitable labels."), select) };
}

function pinEditor(user, container) {
  const f = field("pin-" + user.id, "New PIN for " + user.username, { inputmode: "numeric", maxlength: "4", pattern: "[0-9]{4}", autocomplete: "off" });
  const e = errorBox("pin-error-" + user.id);
  const save = h("button", { type: "submit" }, "Save PIN");
  const clear = h("button", { type: "button", onclick: async () => { const r = await api("PUT", "/api/v1/users/" + user.id + "/pin", { pin: null }); if (!r.ok) showError(e, r.error); else usersPage(); } }, "Remove PIN");
  container.replaceChildren(h("form", { novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    const r = await api("PUT", "/api/v1/users/" + user.id + "/pin", { pin: f.input.value });
    if (!r.ok) { showError(e, r.error, f.input); return; }
    usersPage();
  } }, f.node, e, h("div", { class: "actions" }, save, user.has_pin ? clear : null)));
  f.input.focus();
}

const DAYS = [["mon", "Mon"], ["tue", "Tue"], ["wed", "Wed"], ["thu", "Thu"], ["fri", "Fri"], ["sat", "Sat"], ["sun", "Sun"]];

// Viewing hours: a list of windows (days + from/to hour). No windows = any time.
export function scheduleEditor(uid, schedule) {
  const rows = h("ul", { class: "windows", "aria-label": "Viewing windows" });
  const on = checkbox("sched-on-" + uid, "Only at certain times", !!schedule, "Outside these hours this person sees nothing at all. Hours are the device's local time.");
  const hours = (id, label, value, max) => h("label", { class: "inline", for: id }, label + " ",
    h("select", { id }, Array.from({ length: 25 }, (_, i) => i).filter((i) => (max ? i >= 1 : i <= 23)).map((i) => h("option", { value: String(i), selected: i === value }, String(i).padStart(2, "0") + ":00"))));
  let n = 0;
  const addRow = (w) => {
    const k = uid + "-" + n++;
    const li = h("li", { class: "window" },
      h("fieldset", {}, h("legend", {}, "Days"), DAYS.map(([d, label]) => h("label", { class: "day" }, h("input", { type: "checkbox", name: "day", value: d, checked: w.days.includes(d) }), label))),
      hours("from-" + k, "From", w.from, false), hours("to-" + k, "to", w.to, true),
      h("button", { type: "button", class: "danger", onclick: () => li.remove() }, "Remove window"));
    rows.append(li);
  };
  for (const w of schedule || []) addRow(w);
  const add = h("button", { type: "button", onclick: () => addRow({ days: ["sat", "sun"], from: 8, to: 20 }) }, "Add a window");
  const box = h("div", { class: "sched" }, rows, add);
  const toggle = () => { box.hidden = !on.querySelector("input").checked; if (!box.hidden && !rows.children.length) addRow({ days: ["mon", "tue", "wed", "thu", "fri"], from: 15, to: 19 }); };
  on.querySelector("input").addEventListener("change", toggle);
  box.hidden = !schedule;
  return {
    node: h("fieldset", {}, h("legend", {}, "Viewing hours"), on, box),
    value: () => {
      if (!on.querySelector("input").checked) return null;
      return [...rows.children].map((li) => ({
        days: [...li.querySelectorAll("input[name=day]:checked")].map((x) => x.value),
        from: Number(li.querySelectorAll("select")[0].value),
        to: Number(li.querySelectorAll("select")[1].value),
      }));
    },
  };
}

// ---------- security ----------

const AUDIT_NAMES = {
  claim: "Device claimed", login: "Signed in", login_failed: "Failed sign-in", logout: "Signed out", device_revoked: "Device revoked",
  reset_claim: "Claim reset", settings_changed: "Settings changed", custom_certificate_installed: "Own certificate installed",
  custom_certificate_removed: "Back to the device certificate",
};

export async function securityPage() {
  const owner = isOwner();
  const [tls, audit] = await Promise.all([owner ? api("GET", "/api/v1/tls") : null, owner ? api("GET", "/api/v1/audit?limit=200") : null]);
  const sections = [pageHead("Security", owner ? "Certificates for secure connections, two-factor sign-in, and the log of every sign-in and change." : "Two-factor sign-in for your account.")];
  if (owner) {
    const cert = tls.ok && tls.data.active;
    const certErr = errorBox("cert-error");
    const certStatus = statusLine("cert-status");
    const chain = h("textarea", { id: "cert-chain", rows: "5", spellcheck: "false", placeholder: "-----BEGIN CERTIFICATE-----" });
    const key = h("textarea", { id: "cert-key", rows: "4", spellcheck: "false", placeholder: "-----BEGIN PRIVATE KEY-----" });
    const upload = h("button", { type: "submit" }, "Use my certificate");
    const form = h("form", { novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      busy(upload, true);
      const r = await api("PUT", "/api/v1/tls/custom", { chain: chain.value, key: key.value });
      busy(upload, false);
      if (!r.ok) { showError(certErr, r.error, chain); return; }
      certStatus.textContent = "Installed. New connections get your certificate.";
      securityPage();
    } }, h("label", { for: "cert-chain" }, "Certificate chain (PEM)"), chain, h("label", { for: "cert-key" }, "Private key (PEM)"), key, certErr,
    h("div", { class: "actions" }, upload,
      cert && cert.source === "custom" ? h("button", { type: "button", onclick: async () => { const r = await api("DELETE", "/api/v1/tls/custom"); if (!r.ok) showError(certErr, r.error); else securityPage(); } }, "Go back to the device certificate") : null), certStatus);
    sections.push(card("cert-title", "Certificate", "Browsers trust this Hearth's secure address once the Hearth certificate authority is installed on the device. It can only vouch for this Hearth's own names.",
      cert ? h("dl", { class: "facts" },
        h("dt", {}, "Names"), h("dd", {}, [...cert.dns_names, ...cert.ip_addresses].join(", ")),
        h("dt", {}, "Valid until"), h("dd", {}, new Date(cert.not_after * 1000).toLocaleDateString()),
        h("dt", {}, "Issued by"), h("dd", {}, cert.source === "custom" ? "your own certificate" : "this Hearth's own certificate authority"),
        h("dt", {}, "Fingerprint"), h("dd", {}, h("code", {}, cert.fingerprint_sha256))) : h("p", { class: "muted" }, "HTTPS is not available on this server."),
      h("a", { class: "button", href: "/api/v1/tls/ca.pem", download: "hearth-ca.pem" }, "Download the certificate authority")));
    if (tls.ok && tls.data.available) {
      sections.push(card("custom-title", "Your own certificate", "If you have a domain and a certificate for it, Hearth can use that instead. It is checked before use: the key must match and nothing may be expired.", form));
    }
  }
  sections.push(await twoFactorCard());
  if (owner) {
    const rows = (audit && audit.ok ? audit.data : []).map((a) => h("tr", {},
      h("td", {}, when(a.at)), h("td", {}, AUDIT_NAMES[a.event] || a.event.replace(/_/g, " ")), h("td", {}, a.detail), h("td", {}, a.address || "")));
    sections.push(card("audit-title", "Audit log", "Sign-ins, devices, sharing and settings changes, newest first. Kept on the device; old entries roll off.",
      h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Audit log entries" },
        h("table", { class: "audit" }, h("thead", {}, h("tr", {}, ["When", "What", "Detail", "From"].map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows)))));
  }
  settingsShell("security", ...sections);
}

async function twoFactorCard() {
  const me = session.me;
  const users = isOwner() ? await api("GET", "/api/v1/users") : null;
  const mine = users && users.ok ? users.data.find((u) => u.id === me.user.id) : null;
  const on = mine ? mine.two_factor : !!me.user.two_factor;
  const err = errorBox("totp-error");
  const body = h("div", {});
  const section = card("totp-title", "Two-factor sign-in", "After your password, Hearth asks for a 6-digit code from an authenticator app on your phone. Profiles without a password are not affected.", body, err);
  if (me.user.role === "managed" || me.user.role === "guest") {
    body.append(h("p", {}, "This profile signs in through the household's device, so it has no two-factor setting."));
    return section;
  }
  const code = field("totp-code", "Code from the app", { inputmode: "numeric", autocomplete: "one-time-code", maxlength: "20" });
  if (on) {
    const off = h("button", { type: "submit", class: "danger" }, "Turn two-factor off");
    body.append(h("p", { class: "ok" }, "Two-factor sign-in is on."), h("form", { novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      const r = await api("DELETE", "/api/v1/me/totp", { code: code.input.value.trim() });
      if (!r.ok) { showError(err, r.error, code.input); return; }
      securityPage();
    } }, code.node, h("div", { class: "actions" }, off)));
    return section;
  }
  const start = h("button", { type: "button", onclick: async () => {
    const r = await api("POST", "/api/v1/me/totp");
    if (!r.ok) { showError(err, r.error); return; }
    const t = r.data;
    const confirmBtn = h("button", { type: "submit", class: "primary" }, "Turn on");
    body.replaceChildren(
      h("img", { class: "qr", alt: "QR code to scan with an authenticator app", src: "data:image/svg+xml;base64," + btoa(t.qr_svg) }),
      h("p", {}, "Or type this key: ", h("code", {}, t.secret)),
      h("p", {}, "Recovery codes — keep them somewhere safe; each works once if the phone is lost:"),
      h("ul", { class: "codes" }, t.recovery_codes.map((c) => h("li", {}, h("code", {}, c)))),
      h("form", { novalidate: true, onsubmit: async (e) => {
        e.preventDefault();
        const x = await api("POST", "/api/v1/me/totp/confirm", { code: code.input.value.trim() });
        if (!x.ok) { showError(err, x.error, code.input); return; }
        securityPage();
      } }, code.node, h("div", { class: "actions" }, confirmBtn)));
  } }, "Set up two-factor sign-in");
  body.append(h("p", {}, "Two-factor sign-in is off."), start);
  return section;
}

export function themeToggle() {
  const current = () => document.documentElement.dataset.theme || "dark";
  const btn = h("button", { type: "button", class: "link theme", id: "theme-toggle", "aria-pressed": String(current() === "light") }, "Light theme");
  // Dark is the default everywhere (a TV in a dim room); light is a choice kept per browser.
  btn.addEventListener("click", () => {
    const next = current() === "light" ? "dark" : "light";
    document.documentElement.dataset.theme = next;
    prefs.set("theme", next);
    btn.setAttribute("aria-pressed", String(next === "light"));
  });
  return btn;
}
