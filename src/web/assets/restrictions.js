// What one person may see: the restrictions editor with the real limits (age ceilings as the
// rating names of the owner's country, the unrated rule, labels, libraries, hours) and, beside
// it, a live preview computed by the server with the same policy as real requests.
import { h, api, errorBox, showError, busy, statusLine, listOf, checkbox } from "./core.js";
import { settingsShell, pageHead, scheduleEditor } from "./settings.js";

const PRESET_NAMES = { little_kid: "Little kid", older_kid: "Older kid", teen: "Teen" };
const KINDS = [["movies", "Films", "films", "films"], ["tv", "TV", "tv", "TV shows"]];

export function presetName(id) { return id ? PRESET_NAMES[id] || id : "Custom"; }

function ageWords(age) { return age === 0 ? "all ages" : age + " and up"; }

// A one-line summary for the users list: "Little kid · films up to 7, TV up to 7".
export function restrictionSummary(u) {
  const r = u.restrictions || {};
  const m = r.max_rating || {};
  const part = (label, a) => a === null || a === undefined ? label + ": no age limit" : label + " up to age " + a;
  return presetName(u.preset) + " · " + part("films", m.movies) + ", " + part("TV", m.tv);
}

function same(a, b) { return JSON.stringify(a) === JSON.stringify(b); }

export async function restrictionsPage(id) {
  const [users, info, libs] = await Promise.all([api("GET", "/api/v1/users/" + id), api("GET", "/api/v1/settings/ratings"), api("GET", "/api/v1/libraries")]);
  const err = errorBox("restr-error");
  if (!users.ok || !info.ok) {
    settingsShell("users", pageHead("Restrictions"), err);
    showError(err, (users.ok ? info : users).error);
    return;
  }
  const user = users.data;
  const ratings = info.data;
  const libraries = listOf(libs);
  let r = JSON.parse(JSON.stringify(user.restrictions));
  const name = user.username;

  // Country of the rating names.
  const country = h("select", { id: "rating-country" }, ratings.countries.map((c) => h("option", { value: c.code, selected: c.code === ratings.country }, c.name)));
  country.addEventListener("change", async () => {
    r = current();
    const x = await api("PUT", "/api/v1/settings/ratings", { country: country.value });
    if (!x.ok) { showError(err, x.error); return; }
    user.restrictions = r;
    restrictionsPage(id);
  });

  // Presets fill in the ceilings, the unrated rule and the labels; libraries and hours stay.
  const preset = h("select", { id: "preset" }, h("option", { value: "" }, "Custom"),
    ratings.presets.map((p) => h("option", { value: p.id }, PRESET_NAMES[p.id] + " (up to age " + p.max_age + ")")));
  const matchLine = h("p", { class: "hint", id: "preset-match", role: "status" });

  // Ceilings per kind, with the age beside each rating name.
  const ceilings = {};
  const unrated = {};
  const kindBlocks = KINDS.map(([key, label, table, plural]) => {
    const rows = ratings[table];
    const sel = h("select", { id: "ceiling-" + key, "aria-describedby": "ceiling-" + key + "-says" });
    const says = h("p", { class: "hint", id: "ceiling-" + key + "-says" });
    const fill = (age) => {
      const opts = [h("option", { value: "" }, "No age limit")];
      const ages = new Set(rows.map((c) => c.min_age));
      for (const c of rows) opts.push(h("option", { value: String(c.min_age) + ":" + c.code }, c.code + " — " + ageWords(c.min_age)));
      if (age !== null && age !== undefined && !ages.has(age)) {
        opts.push(h("option", { value: String(age) + ":" }, "Up to age " + age));
      }
      sel.replaceChildren(...opts);
      if (age === null || age === undefined) sel.value = "";
      else {
        // The strictest rating name of that age (the ceiling is an age; several names share one).
        const exact = [...sel.options].filter((o) => o.value && Number(o.value.split(":")[0]) === age);
        sel.value = exact.length ? exact[exact.length - 1].value : "";
      }
      explain(age);
    };
    const explain = (age) => {
      if (age === null || age === undefined) { says.textContent = "No age limit: every rating is shown."; return; }
      const ok = rows.filter((c) => c.min_age <= age).map((c) => c.code);
      const no = rows.filter((c) => c.min_age > age).map((c) => c.code);
      says.textContent = "Age ceiling " + age + ". Shows " + (ok.length ? ok.join(", ") : "none of these ratings") + (no.length ? "; hides " + no.join(", ") : "") + ". Ratings from other countries are compared by age.";
    };
    ceilings[key] = { sel, fill, value: () => sel.value === "" ? null : Number(sel.value.split(":")[0]) };
    sel.addEventListener("change", () => { explain(ceilings[key].value()); changed(); });
    const rule = (r.unrated && r.unrated[key]) || "allow";
    unrated[key] = checkbox("unrated-" + key, "Show " + plural + " without a rating", rule === "allow", "Titles with no rating (or one Hearth does not know) are hidden unless this is on.");
    unrated[key].querySelector("input").addEventListener("change", changed);
    return h("fieldset", { class: "kind" }, h("legend", {}, label),
      h("label", { for: "ceiling-" + key }, "Highest rating " + name + " may watch"), sel, says, unrated[key]);
  });

  // Labels: the ones on items in the libraries, plus any already in the rules.
  const known = new Map(ratings.labels.map((l) => [l.label, l.items]));
  for (const l of [...(r.labels_allow || []), ...(r.labels_deny || [])]) if (!known.has(l)) known.set(l, 0);
  const labelSel = {};
  const labelRows = [...known.entries()].sort((a, b) => a[0].localeCompare(b[0])).map(([label, n]) => {
    const sid = "label-" + label.replace(/[^a-z0-9]+/gi, "-");
    const sel = h("select", { id: sid }, h("option", { value: "" }, "No rule"), h("option", { value: "deny" }, "Hide"), h("option", { value: "allow" }, "Only titles with a chosen label"));
    labelSel[label] = sel;
    sel.addEventListener("change", changed);
    return h("li", {}, h("label", { for: sid }, label, h("span", { class: "hint" }, n === 1 ? " 1 title" : " " + n + " titles")), sel);
  });
  const labelsBox = h("fieldset", {}, h("legend", {}, "Labels"),
    labelRows.length ? h("ul", { class: "labels" }, labelRows) : h("p", { class: "hint" }, "No title in the libraries has a label yet. Labels come from the files' tags or from your edits on a title's page."));

  // Libraries.
  const libBoxes = libraries.map((l) => h("label", { class: "choice" }, h("input", { type: "checkbox", name: "lib", value: String(l.id) }), h("span", {}, l.name)));
  const libsBox = libBoxes.length ? h("fieldset", {}, h("legend", {}, "Libraries"), libBoxes) : null;
  for (const b of libBoxes) b.querySelector("input").addEventListener("change", changed);

  const sched = scheduleEditor(user.id, r.schedule);

  function load(x) {
    for (const [key] of KINDS) {
      ceilings[key].fill(x.max_rating ? x.max_rating[key] : null);
      unrated[key].querySelector("input").checked = !(x.unrated && x.unrated[key] === "block");
    }
    for (const [label, sel] of Object.entries(labelSel)) {
      sel.value = (x.labels_deny || []).includes(label) ? "deny" : (x.labels_allow || []).includes(label) ? "allow" : "";
    }
    const only = x.libraries === undefined || x.libraries === "all" ? null : x.libraries;
    for (const b of libBoxes) { const i = b.querySelector("input"); i.checked = !only || only.includes(Number(i.value)); }
  }

  function current() {
    const chosen = libBoxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => Number(i.value));
    const pick = (v) => Object.entries(labelSel).filter(([, s]) => s.value === v).map(([l]) => l).sort();
    return {
      libraries: libraries.length && chosen.length !== libraries.length ? chosen : "all",
      max_rating: { movies: ceilings.movies.value(), tv: ceilings.tv.value() },
      unrated: Object.fromEntries(KINDS.map(([key]) => [key, unrated[key].querySelector("input").checked ? "allow" : "block"])),
      labels_allow: pick("allow"),
      labels_deny: pick("deny"),
      schedule: sched.value(),
    };
  }

  function showMatch() {
    const c = current();
    const m = ratings.presets.find((p) => same(p.restrictions.max_rating, c.max_rating) && same(p.restrictions.unrated, c.unrated)
      && same(p.restrictions.labels_deny, c.labels_deny) && same(p.restrictions.labels_allow, c.labels_allow));
    preset.value = m ? m.id : "";
    matchLine.textContent = m ? "These limits are the " + PRESET_NAMES[m.id] + " preset." : "Custom limits (no preset matches).";
  }

  preset.addEventListener("change", () => {
    const p = ratings.presets.find((x) => x.id === preset.value);
    if (!p) { showMatch(); return; }
    const c = current();
    load(Object.assign({}, p.restrictions, { libraries: c.libraries }));
    changed();
  });

  // The preview, asked of the server after each change.
  const summary = h("p", { class: "preview-summary", id: "preview-summary", role: "status", "aria-live": "polite" });
  const notice = h("div", { id: "unrated-notice" });
  const lists = h("div", { class: "preview-lists" });
  let seq = 0;
  async function refresh() {
    const mine = ++seq;
    const c = current();
    const p = await api("POST", "/api/v1/restrictions/preview", { restrictions: c });
    if (mine !== seq) return;
    if (!p.ok) { summary.textContent = p.error.message; notice.replaceChildren(); lists.replaceChildren(); return; }
    const d = p.data;
    const parts = [];
    if (d.films.total) parts.push(d.films.visible + " of " + d.films.total + (d.films.total === 1 ? " film" : " films"));
    if (d.shows.total) parts.push(d.shows.visible + " of " + d.shows.total + (d.shows.total === 1 ? " show" : " shows"));
    summary.textContent = parts.length ? name + " will see " + parts.join(" and ") + "." : "There are no films or shows in the libraries yet.";
    const notes = [];
    for (const [key, label, count] of [["movies", "films", d.films], ["tv", "shows", d.shows]]) {
      if (!count.unrated_hidden) continue;
      const allow = h("button", { type: "button", onclick: () => { unrated[key].querySelector("input").checked = true; changed(); } }, "Allow unrated " + label);
      const rate = h("a", { href: "#unrated-" + key + "-list" }, "rate them");
      notes.push(h("p", { class: "notice", role: "status" }, count.unrated_hidden + " " + (count.unrated_hidden === 1 ? label.replace(/s$/, "") + " has" : label + " have") + " no rating and " + (count.unrated_hidden === 1 ? "is" : "are") + " hidden: ", rate, ", or ", allow));
    }
    notice.replaceChildren(...notes);
    const item = (t) => h("li", {}, h("a", { href: "#/item/" + t.id }, t.title), t.year ? " (" + t.year + ")" : "",
      t.rating ? h("span", { class: "tag" }, t.rating) : h("span", { class: "tag" }, "no rating"),
      t.reason ? h("span", { class: "hint" }, " — hidden: " + t.reason) : null);
    const seen = d.titles.filter((t) => t.visible);
    const hidden = d.titles.filter((t) => !t.visible);
    const unratedFilms = hidden.filter((t) => t.hidden_because === "unrated" && t.kind === "film");
    const unratedShows = hidden.filter((t) => t.hidden_because === "unrated" && t.kind === "show");
    lists.replaceChildren(...[
      h("h3", {}, "What " + name + " will see"), seen.length ? h("ul", { class: "titles", id: "preview-visible" }, seen.map(item)) : h("p", { class: "hint" }, "Nothing."),
      unratedFilms.length ? [h("h3", { id: "unrated-movies-list" }, "Films without a rating"), bulkRater("movies", unratedFilms)] : null,
      unratedShows.length ? [h("h3", { id: "unrated-tv-list" }, "Shows without a rating"), h("ul", { class: "titles" }, unratedShows.map(item))] : null,
      h("details", {}, h("summary", {}, "Hidden from " + name + " (" + hidden.length + ")"), h("ul", { class: "titles", id: "preview-hidden" }, hidden.map(item)))].flat(Infinity).filter(Boolean));
  }
  // Unrated films, each with a box to tick; the chosen ones get one rating in one step.
  function bulkRater(key, titles) {
    const boxes = titles.map((t) => h("li", {}, h("label", { class: "choice" }, h("input", { type: "checkbox", name: "rate-" + key, value: String(t.id) }),
      h("span", {}, t.title + (t.year ? " (" + t.year + ")" : ""))), " ", h("a", { href: "#/item/" + t.id, "aria-label": "Open " + t.title }, "open")));
    const pick = ratingPicker("bulk-rating-" + key, ratings, "");
    pick.options[0].textContent = "Choose a rating";
    const e = errorBox("bulk-error-" + key);
    const go = h("button", { type: "button", onclick: async () => {
      const ids = [...lists.querySelectorAll("input[name=rate-" + key + "]:checked")].map((x) => Number(x.value));
      if (!ids.length) { showError(e, { message: "Tick the titles to rate first." }); return; }
      if (!pick.value) { showError(e, { message: "Choose a rating first." }, pick); return; }
      busy(go, true);
      const x = await api("POST", "/api/v1/items/overrides", { ids, set: { rating: pick.value } });
      busy(go, false);
      if (!x.ok) { showError(e, x.error); return; }
      refresh();
    } }, "Rate the ticked titles");
    return [h("p", { class: "hint" }, "Tick titles and give them a rating, or open one to edit it. Hearth keeps your ratings; your files stay as they are."),
      h("ul", { class: "titles" }, boxes), h("div", { class: "actions" }, h("label", { for: "bulk-rating-" + key, class: "inline" }, "Rating "), pick, go), e];
  }

  let timer = null;
  function changed() { showMatch(); clearTimeout(timer); timer = setTimeout(refresh, 150); }

  const status = statusLine("restr-status");
  const save = h("button", { type: "submit", class: "primary" }, "Save");
  const form = h("form", { class: "editor", novalidate: true, onsubmit: async (ev) => {
    ev.preventDefault();
    busy(save, true);
    const res = await api("PATCH", "/api/v1/users/" + user.id, { restrictions: current() });
    busy(save, false);
    if (!res.ok) { showError(err, res.error); return; }
    showError(err, null);
    status.textContent = "Saved. " + name + " sees this from the next page they open.";
  } },
    h("div", {}, h("label", { for: "preset" }, "Start from a preset"), h("span", { class: "hint" }, "A preset fills in the limits below; change any of them after."), preset, matchLine),
    h("div", {}, h("label", { for: "rating-country" }, "Rating names from"), h("span", { class: "hint" }, "Whose rating names to show here. Limits are ages, so titles rated in any country are judged alike."), country),
    kindBlocks, labelsBox, libsBox, sched.node, err,
    h("div", { class: "actions" }, save, h("a", { class: "button", href: "#/settings/users" }, "Back to Users & Sharing")), status);
  sched.node.addEventListener("change", changed);
  sched.node.addEventListener("click", (e) => { if (e.target.tagName === "BUTTON") changed(); });

  settingsShell("users", pageHead("What " + name + " may see", "Limits apply everywhere: browsing, search, artwork, playback and DLNA. The preview shows what " + name + " gets, title by title."),
    h("div", { class: "restrictions" },
      h("section", { class: "card", "aria-labelledby": "limits-title" }, h("h2", { id: "limits-title" }, "Limits"), form),
      h("section", { class: "card preview", "aria-labelledby": "preview-title" }, h("h2", { id: "preview-title" }, "Preview"), summary, notice, lists)));
  load(r);
  showMatch();
  refresh();
  preset.focus();
}

// A rating picker with the owner's country's films and TV names, ages beside them.
function ratingPicker(id, ratings, value) {
  const cc = ratings.country;
  const opt = (c) => h("option", { value: cc + "/" + c.code }, c.code + " — " + ageWords(c.min_age));
  const groups = ratings.films === ratings.tv || same(ratings.films, ratings.tv)
    ? [h("optgroup", { label: "Ratings" }, ratings.films.map(opt))]
    : [h("optgroup", { label: "Films" }, ratings.films.map(opt)), h("optgroup", { label: "TV" }, ratings.tv.map(opt))];
  const sel = h("select", { id }, h("option", { value: "" }, "As in the file"), groups);
  if (value && ![...sel.options].some((o) => o.value === value)) sel.append(h("option", { value }, value));
  sel.value = value || "";
  return sel;
}

// The owner's corrections of a title (rating, labels, title, year): kept by Hearth, never
// written into the media folder. Shown on the item page to the owner only.
export async function overrideEditor(it, onSaved) {
  const [ov, info] = await Promise.all([api("GET", "/api/v1/items/" + it.id + "/override"), api("GET", "/api/v1/settings/ratings")]);
  if (!ov.ok || !info.ok) return null;
  const o = ov.data.overrides || {};
  const scanned = ov.data.scanned;
  const rating = ratingPicker("ov-rating", info.data, o.rating);
  const title = h("input", { id: "ov-title", type: "text", maxlength: "200", value: o.title || "", placeholder: scanned.title });
  const year = h("input", { id: "ov-year", type: "text", inputmode: "numeric", maxlength: "4", value: o.year ? String(o.year) : "", placeholder: scanned.year ? String(scanned.year) : "" });
  const labels = h("input", { id: "ov-labels", type: "text", value: o.labels ? o.labels.join(", ") : "", placeholder: (scanned.tags || []).join(", ") || "none", "aria-describedby": "ov-labels-hint" });
  const err = errorBox("ov-error");
  const status = statusLine("ov-status");
  const save = h("button", { type: "submit", class: "primary" }, "Save changes");
  const reset = h("button", { type: "button", onclick: async () => {
    busy(reset, true);
    const x = await api("DELETE", "/api/v1/items/" + it.id + "/override");
    busy(reset, false);
    if (!x.ok) { showError(err, x.error); return; }
    onSaved();
  } }, "Back to the file's facts");
  const scannedRating = scanned.rating ? scanned.rating.raw : "none";
  const form = h("form", { novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    const body = {
      title: title.value.trim() || null,
      year: year.value.trim() ? Number(year.value.trim()) : null,
      rating: rating.value || null,
      labels: labels.value.trim() ? labels.value.split(",").map((x) => x.trim()).filter(Boolean) : null,
    };
    if (year.value.trim() && !/^\d{4}$/.test(year.value.trim())) { showError(err, { message: "The year is four digits, like 2019." }, year); return; }
    busy(save, true);
    const x = await api("PUT", "/api/v1/items/" + it.id + "/override", body);
    busy(save, false);
    if (!x.ok) { showError(err, x.error, x.error.message.includes("rating") ? rating : x.error.message.includes("title") ? title : null); return; }
    status.textContent = "Saved. Everyone's lists, search and players use this now.";
    onSaved();
  } },
    h("div", {}, h("label", { for: "ov-rating" }, "Rating"), h("span", { class: "hint" }, "In the file: " + scannedRating + "."), rating),
    h("div", {}, h("label", { for: "ov-labels" }, "Labels"), h("span", { class: "hint", id: "ov-labels-hint" }, "Comma-separated; replaces the file's tags (" + ((scanned.tags || []).join(", ") || "none") + ")."), labels),
    h("div", {}, h("label", { for: "ov-title" }, "Title"), title),
    h("div", {}, h("label", { for: "ov-year" }, "Year"), year),
    err, h("div", { class: "actions" }, save, ov.data.overrides ? reset : null), status);
  return h("section", { class: "card overrides", "aria-labelledby": "ov-title-h" },
    h("h2", { id: "ov-title-h" }, "Rating and labels"),
    h("p", { class: "muted" }, ov.data.overrides ? "You changed this title's facts. Hearth keeps your changes; the files are untouched." : "Correct what the files say. Hearth keeps your changes; the files are untouched."),
    form);
}
