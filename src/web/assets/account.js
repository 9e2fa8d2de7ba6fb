// Signing in, the profile picker with its PIN pad, and accepting a friend's invite.
import { h, api, render, field, errorBox, showError, busy, formCard, thisDevice, session } from "./core.js";

export function loginPage(status, after) {
  const u = field("login-username", "Username", { autocomplete: "username", autocapitalize: "none", spellcheck: "false", required: true });
  const p = field("login-password", "Password", { type: "password", autocomplete: "current-password", required: true });
  const totp = field("login-totp", "Two-factor code", { inputmode: "numeric", autocomplete: "one-time-code", maxlength: "20" },
    "The 6-digit code from your authenticator app, or a recovery code.");
  totp.node.hidden = true;
  const err = errorBox("login-error");
  const go = h("button", { class: "primary", type: "submit" }, "Sign in");
  render(formCard("Sign in to " + status.server_name, null, [u.node, p.node, totp.node, err], [go], async () => {
    busy(go, true);
    const body = { username: u.input.value.trim(), password: p.input.value, device: thisDevice() };
    if (!totp.node.hidden && totp.input.value.trim()) body.totp = totp.input.value.trim();
    const r = await api("POST", "/api/v1/auth/login", body);
    busy(go, false);
    if (!r.ok) {
      if (/totp|two_factor/.test(r.error.code)) {
        totp.node.hidden = false;
        showError(err, r.error, totp.input);
        return;
      }
      showError(err, r.error, r.error.code === "bad_credentials" ? p.input : null);
      return;
    }
    after();
  }));
}

export async function profilesPage() {
  const r = await api("GET", "/api/v1/auth/profiles");
  const err = errorBox("profile-error");
  const list = r.ok ? r.data : [];
  const tiles = list.map((p) => h("li", {}, h("button", {
    type: "button", class: p.current ? "tile current" : "tile", "aria-pressed": p.current ? "true" : "false",
    onclick: () => (p.has_pin ? pinPad(p) : doSwitch(p, null, err)),
  }, h("span", { class: "avatar", "aria-hidden": "true" }, p.name.slice(0, 1).toUpperCase()), p.name,
    p.has_pin ? h("span", { class: "hint" }, "PIN") : null)));
  render(h("section", { class: "card", "aria-labelledby": "title" }, h("h1", { id: "title" }, "Who's watching?"),
    tiles.length ? h("ul", { class: "tiles" }, tiles) : h("p", { class: "muted" }, "Profiles can be picked only on devices signed in by the household."), err));
  if (!r.ok) showError(err, r.error);
}

async function doSwitch(p, pin, err) {
  const r = await api("POST", "/api/v1/auth/switch", { user_id: p.id, pin });
  if (!r.ok) { showError(err, r.error); return false; }
  if (location.hash === "#/") window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = "#/";
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
  const keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "back", "0"].map((k) => h("button", {
    type: "button", class: "key", "aria-label": k === "back" ? "Delete last digit" : k, onclick: () => press(k),
  }, k === "back" ? "⌫" : k));
  // Arrow keys move around the pad like a TV remote: 3 columns.
  const move = (e) => {
    const i = keys.indexOf(document.activeElement);
    if (i < 0) return;
    const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: 3, ArrowUp: -3 }[e.key];
    if (!step) return;
    e.preventDefault();
    const j = Math.min(keys.length - 1, Math.max(0, i + step));
    keys[j].focus();
  };
  const pad = h("div", { class: "pinpad", role: "group", "aria-label": "PIN pad", onkeydown: (e) => {
    if (/^[0-9]$/.test(e.key)) { e.preventDefault(); press(e.key); } else if (e.key === "Backspace") { e.preventDefault(); press("back"); } else move(e);
  } }, keys);
  render(h("section", { class: "card narrow", "aria-labelledby": "title" }, h("h1", { id: "title" }, "PIN for " + p.name), dots, pad, err,
    h("div", { class: "actions" }, h("button", { type: "button", onclick: () => profilesPage() }, "Cancel"))));
  keys[0].focus();
}

export function invitePage(token) {
  const u = field("invite-username", "Choose a username", { autocomplete: "username", autocapitalize: "none", spellcheck: "false", maxlength: "64" });
  const p = field("invite-password", "Choose a password", { type: "password", autocomplete: "new-password", maxlength: "256" }, "At least 10 characters.");
  const err = errorBox("accept-error");
  const go = h("button", { class: "primary", type: "submit" }, "Join");
  render(formCard("You are invited to " + (session.status ? session.status.server_name : "Hearth"), "Create your account to see what has been shared with you.",
    [u.node, p.node, err], [go], async () => {
      busy(go, true);
      const r = await api("POST", "/api/v1/invites/" + encodeURIComponent(token) + "/accept", { username: u.input.value.trim(), password: p.input.value, device: thisDevice() });
      busy(go, false);
      if (!r.ok) { showError(err, r.error); return; }
      location.hash = "#/";
    }));
}
