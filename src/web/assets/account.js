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
    onclick: () => ownerPinGuard(list, p, err, () => (p.has_pin ? pinPad(p) : doSwitch(p, null, err))),
  }, h("span", { class: "avatar", "aria-hidden": "true" }, p.name.slice(0, 1).toUpperCase()), p.name,
    p.has_pin ? h("span", { class: "hint" }, "PIN") : null)));
  render(h("section", { class: "card", "aria-labelledby": "title" }, h("h1", { id: "title" }, "Who's watching?"),
    tiles.length ? h("ul", { class: "tiles" }, tiles) : h("p", { class: "muted" }, "Profiles can be picked only on devices signed in by the household."), err));
  if (!r.ok) showError(err, r.error);
}

// Leaving the owner for another profile on this device: without an owner PIN the only way
// back is the owner's password, so say so first and offer to set a PIN.
function ownerPinGuard(list, p, err, go) {
  const me = list.find((x) => x.current);
  if (!me || me.role !== "owner" || me.has_pin || p.id === me.id) { go(); return; }
  const pin = h("input", { id: "owner-pin", type: "password", inputmode: "numeric", maxlength: "4", autocomplete: "off", "aria-describedby": "owner-pin-hint" });
  const e = errorBox("owner-pin-error");
  const dlg = h("dialog", { class: "card", "aria-labelledby": "owner-pin-title", "aria-describedby": "owner-pin-why" });
  const close = () => { dlg.close(); dlg.remove(); };
  const setFirst = h("button", { type: "submit", class: "primary" }, "Set PIN and switch");
  const anyway = h("button", { type: "button", onclick: () => { close(); go(); } }, "Switch without a PIN");
  const cancel = h("button", { type: "button", onclick: close }, "Cancel");
  dlg.append(h("h2", { id: "owner-pin-title" }, "Set an owner PIN first?"),
    h("p", { id: "owner-pin-why" }, "You have no owner PIN. After switching this device to " + p.name + ", the only way back to " + me.name + " is to sign out and sign in again with " + me.name + "'s password. With a PIN, you switch back with four digits."),
    h("form", { method: "dialog", novalidate: true, onsubmit: async (ev) => {
      ev.preventDefault();
      if (!/^[0-9]{4}$/.test(pin.value)) { showError(e, { message: "A PIN is four digits." }, pin); return; }
      setFirst.disabled = true;
      const r = await api("PUT", "/api/v1/users/" + me.id + "/pin", { pin: pin.value });
      setFirst.disabled = false;
      if (!r.ok) { showError(e, r.error, pin); return; }
      close();
      go();
    } }, h("label", { for: "owner-pin" }, "Owner PIN for " + me.name), h("span", { class: "hint", id: "owner-pin-hint" }, "Four digits, asked when switching back to " + me.name + "."), pin, e,
      h("div", { class: "actions" }, setFirst, anyway, cancel)));
  document.body.append(dlg);
  dlg.showModal();
  pin.focus();
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
