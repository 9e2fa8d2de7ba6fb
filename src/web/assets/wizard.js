// The setup wizard: welcome → setup code → owner → name (claims) → network → libraries → done.
import { h, api, render, field, errorBox, showError, busy, formCard, stepsBar, thisDevice, main, radio, listOf, kindName } from "./core.js";
import { wizardRestore } from "./backup.js";

const STEPS = ["Welcome", "Setup code", "Owner", "Name", "Network", "Libraries", "Done"];
const wizard = { code: "", username: "", password: "", serverName: "", status: null };
const bar = (n) => stepsBar(STEPS, n);

export function wizardWelcome(status) {
  wizard.status = status;
  const start = h("button", { class: "primary", type: "submit" }, "Get started");
  const restore = h("button", { type: "button", id: "start-restore", onclick: () => wizardRestore(() => wizardWelcome(status)) }, "Restore from a backup");
  render(formCard("Welcome to your Hearth",
    "This device will keep your household's films, shows, music and photos at home. Setting it up takes about a minute: you will need the setup code shown on the device's screen or console.",
    [h("p", {}, "Version " + status.version + "."), h("p", { class: "muted" }, "Had a Hearth before? Restore its backup instead of starting fresh.")],
    [start, restore], () => wizardCode(), bar(0)));
}

function wizardCode() {
  const f = field("setup-code", "Setup code", { class: "code", autocomplete: "one-time-code", autocapitalize: "characters", spellcheck: "false", placeholder: "XXXX-XXXX-XXXX", value: wizard.code, maxlength: "20", required: true },
    "Printed on the device's console when it starts (run `hearth setup-code` there to see it again).");
  const err = errorBox("code-error");
  const next = h("button", { class: "primary", type: "submit" }, "Continue");
  const back = h("button", { type: "button", onclick: () => wizardWelcome(wizard.status) }, "Back");
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
    }, bar(1)));
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
    }, bar(2)));
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
  }, bar(3)));
}

export async function wizardNetwork() {
  const current = await api("GET", "/api/v1/settings/network");
  const s = current.ok ? current.data : { remote_access: false, secure_connections: "preferred" };
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
    }, bar(4)));
}

export async function wizardLibraries() {
  const listed = await api("GET", "/api/v1/libraries");
  const libs = listOf(listed);
  const available = listed.status !== 404;
  const n = field("lib-name", "Library name", { placeholder: "Films", maxlength: "64" });
  const folder = field("lib-folder", "Folder", { placeholder: "/media/usb-disk/Films", spellcheck: "false", autocapitalize: "none" }, "The full path of a folder on this device that holds your media.");
  const kind = h("select", { id: "lib-kind", name: "lib-kind" },
    ["movies", "shows", "music", "photos", "videos"].map((k) => h("option", { value: k }, { movies: "Films", shows: "TV shows", music: "Music", photos: "Photos", videos: "Other videos" }[k])));
  const err = errorBox("lib-error");
  const list = h("ul", { class: "list folders", "aria-label": "Libraries" }, libs.map((l) => h("li", {}, h("span", {}, l.name), h("span", { class: "tag" }, kindName(l.kind)))));
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
  }, bar(5)));
}

export function wizardDone() {
  const go = h("button", { class: "primary", type: "submit" }, "Go to my Hearth");
  render(formCard("Your Hearth is ready", "You are signed in as the owner on this browser. Next, add the people in your household under Users & Sharing.",
    [], [go], () => { location.hash = "#/"; }, bar(6)));
}
