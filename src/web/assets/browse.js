// Browsing: home rows, library views (virtualised grid or list, sort, filter, alphabet
// jump), shows → seasons → episodes, artists → albums → tracks, the photo timeline with a
// lightbox, the item page and search as you type.
import { h, api, render, errorBox, showError, errorPage, session, listOf, poster, ratingText, duration, bytes, kindName, prefs, onLeave, main, progressBar, artUrl, isOwner } from "./core.js";
import { overrideEditor } from "./restrictions.js";
import { VirtualGrid } from "./grid.js";
import { playQueue, browserCaps } from "./player.js";

const PAGE = 500;

// Measurements the browser tests read (render time of the grid after data arrived).
window.hearthPerf = window.hearthPerf || {};

function libraries() {
  return api("GET", "/api/v1/libraries").then(listOf);
}

function enc(s) { return encodeURIComponent(s); }

// A horizontal row of cards (home page), moved through with left/right arrows.
function shelf(id, title, items, cardFor) {
  if (!items.length) return null;
  const list = h("ul", { class: "shelf", "aria-labelledby": id }, items.map((it) => h("li", {}, cardFor(it))));
  list.addEventListener("keydown", (e) => {
    if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
    const links = [...list.querySelectorAll("a")];
    const i = links.indexOf(document.activeElement);
    if (i < 0) return;
    const j = i + (e.key === "ArrowRight" ? 1 : -1);
    if (j >= 0 && j < links.length) { e.preventDefault(); e.stopPropagation(); links[j].focus(); links[j].scrollIntoView({ block: "nearest", inline: "nearest" }); }
  });
  return h("section", { class: "band", "aria-labelledby": id }, h("h2", { id }, title), list);
}

function posterCard(it, extra) {
  return h("a", { class: "poster", href: "#/item/" + it.id },
    poster(it), h("span", { class: "title" }, episodeTitle(it)),
    h("span", { class: "hint" }, [it.show ? null : it.year, ratingText(it.rating)].filter(Boolean).join(" · ") || "\u00a0"),
    extra || null);
}

function episodeTitle(it) {
  if (it.show) return it.show + " · " + (it.season !== null && it.season !== undefined ? "S" + it.season + "E" + (it.episode || "?") + " " : "") + it.title;
  return it.title;
}

export async function homePage() {
  const me = session.me;
  const [libs, cont] = await Promise.all([libraries(), api("GET", "/api/v1/continue")]);
  const recent = await Promise.all(libs.filter((l) => l.kind !== "music").slice(0, 8).map((l) =>
    api("GET", "/api/v1/libraries/" + l.id + "/items?sort=added&order=desc&limit=16").then((r) => ({ lib: l, items: r.ok ? r.data.items : [] }))));
  const started = cont.ok ? cont.data : [];
  const notice = !me.secure && me.https_port ? h("p", { class: "notice" }, "This connection is not encrypted, so others on your network could see what you watch. For a private one, use ",
    h("a", { href: "https://" + location.hostname + ":" + me.https_port + "/" }, "https://" + location.hostname + ":" + me.https_port + "/"),
    ". The first time, your browser will not know Hearth yet: on each device, download Hearth's certificate from Settings → Security and add it, once, so the browser trusts it.") : null;
  const role = { owner: "owner", managed: "profile", guest: "guest", friend: "friend" }[me.user.role] || me.user.role;
  render(h("div", { class: "wide" },
    h("header", { class: "page-head" },
      h("h1", {}, me.server_name),
      h("p", { class: "muted" }, "Signed in as " + me.user.username + " (" + role + ")."), notice),
    shelf("cont-title", "Continue watching", started, (it) => posterCard(it,
      it.watch && it.duration_ms ? progressBar(it.watch.position_ms, it.duration_ms, Math.round(it.watch.position_ms / 60000) + " of " + Math.round(it.duration_ms / 60000) + " minutes watched") : null)),
    ...recent.map((r) => shelf("recent-" + r.lib.id, "Recently added in " + r.lib.name, r.items, (it) => posterCard(it))),
    h("section", { class: "band", "aria-labelledby": "libs-title" },
      h("h2", { id: "libs-title" }, "Libraries"),
      libs.length
        ? h("ul", { class: "libtiles" }, libs.map((l) => h("li", {}, h("a", { class: "libtile kind-" + l.kind, href: "#/library/" + l.id },
            h("span", { class: "title" }, l.name), h("span", { class: "hint" }, kindName(l.kind) + " · " + l.items + " items")))))
        : h("p", { class: "muted" }, me.user.role === "owner" ? "No libraries yet. Add folders of films, shows, music or photos under Settings → Disks & Libraries." : "Nothing has been shared with you yet."))));
}

// ---------- library views ----------

export async function libraryPage(id, rest) {
  const libs = await libraries();
  const lib = libs.find((l) => String(l.id) === String(id));
  if (!lib) { errorPage("Library", { message: "This library does not exist, or it is not shared with you." }); return; }
  const parts = rest ? rest.split("/").map(decodeURIComponent) : [];
  if (lib.kind === "shows") {
    if (parts[0] === "show" && parts[2] === "season") return episodesPage(lib, parts[1], parts[3]);
    if (parts[0] === "show") return seasonsPage(lib, parts[1]);
    return groupGrid(lib, "shows", (s) => "#/library/" + lib.id + "/show/" + enc(s.name), (s) => s.seasons + (s.seasons === 1 ? " season" : " seasons"));
  }
  if (lib.kind === "music") {
    if (parts[0] === "artist" && parts[2] === "album") return tracksPage(lib, parts[1], parts[3]);
    if (parts[0] === "artist") return albumsPage(lib, parts[1]);
    return groupGrid(lib, "artists", (a) => "#/library/" + lib.id + "/artist/" + enc(a.name), (a) => a.albums + (a.albums === 1 ? " album" : " albums"));
  }
  if (lib.kind === "photos") return timelinePage(lib);
  return itemsPage(lib);
}

function crumbs(...links) {
  return h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("ol", {}, links.map(([label, href], i) =>
    h("li", {}, i === links.length - 1 ? h("span", { "aria-current": "page" }, label) : h("a", { href }, label)))));
}

const LETTERS = ["#", ..."ABCDEFGHIJKLMNOPQRSTUVWXYZ"];

function initial(title) {
  const c = (title || "").normalize("NFD").replace(/[\u0300-\u036f]/g, "").charAt(0).toUpperCase();
  return c >= "A" && c <= "Z" ? c : "#";
}

async function itemsPage(lib) {
  const sort = prefs.get("sort_" + lib.id, "title");
  const order = prefs.get("order_" + lib.id, "asc");
  const mode = prefs.get("view", "grid");
  const genre = prefs.get("genre_" + lib.id, "");
  const grid = new VirtualGrid({ label: lib.name, mode, href: (it) => "#/item/" + it.id });
  let stopped = false;
  onLeave(() => { stopped = true; grid.destroy(); }, grid.el);
  const count = h("p", { class: "muted", "aria-live": "polite" }, "Loading…");
  const sortSel = h("select", { id: "sort", "aria-label": "Sort by" },
    [["title", "Title"], ["year", "Year"], ["added", "Recently added"]].map(([v, t]) => h("option", { value: v, selected: v === sort }, t)));
  const orderSel = h("select", { id: "order", "aria-label": "Order" },
    [["asc", "Ascending"], ["desc", "Descending"]].map(([v, t]) => h("option", { value: v, selected: v === order }, t)));
  const genreSel = h("select", { id: "genre", "aria-label": "Genre" }, h("option", { value: "" }, "All genres"),
    genre ? h("option", { value: genre, selected: true }, genre) : null);
  const viewBtn = (m, label) => h("button", { type: "button", class: "seg", "aria-pressed": String(mode === m), onclick: () => {
    prefs.set("view", m); grid.setMode(m);
    for (const b of toolbar.querySelectorAll(".seg")) b.setAttribute("aria-pressed", String(b.textContent === label));
  } }, label);
  const reload = () => { prefs.set("sort_" + lib.id, sortSel.value); prefs.set("order_" + lib.id, orderSel.value); prefs.set("genre_" + lib.id, genreSel.value); libraryPage(lib.id); };
  sortSel.addEventListener("change", reload);
  orderSel.addEventListener("change", reload);
  genreSel.addEventListener("change", reload);
  const toolbar = h("div", { class: "toolbar" },
    h("label", { for: "sort", class: "inline" }, "Sort"), sortSel, orderSel,
    h("label", { for: "genre", class: "inline" }, "Filter"), genreSel,
    h("span", { class: "segs", role: "group", "aria-label": "View" }, viewBtn("grid", "Grid"), viewBtn("list", "List")));
  let loaded = false;
  const jumpTo = async (letter) => {
    const find = () => grid.items.findIndex((it) => (letter === "#" ? initial(it.title) === "#" : initial(it.title) >= letter && initial(it.title) !== "#"));
    let i = find();
    while (i < 0 && !loaded && !stopped) { await new Promise((r) => setTimeout(r, 50)); i = find(); }
    if (i >= 0) grid.focusIndex(i);
  };
  const alpha = sort === "title" && order === "asc"
    ? h("nav", { class: "alpha", "aria-label": "Jump to letter" }, LETTERS.map((l) => h("button", { type: "button", class: "letter", onclick: () => jumpTo(l), "aria-label": l === "#" ? "Titles starting with a digit or symbol" : "Titles starting with " + l }, l)))
    : null;
  const err = errorBox("lib-page-error");
  render(h("section", { class: "wide library", "aria-labelledby": "title" },
    crumbs(["Home", "#/"], [lib.name, "#/library/" + lib.id]),
    h("div", { class: "page-head" }, h("h1", { id: "title" }, lib.name), count), toolbar, err,
    h("div", { class: "with-alpha" }, grid.el, alpha)));

  const q = "sort=" + sort + "&order=" + order + (genre ? "&genre=" + enc(genre) : "");
  const genres = new Set();
  let offset = 0;
  let first = true;
  for (;;) {
    const r = await api("GET", "/api/v1/libraries/" + lib.id + "/items?" + q + "&offset=" + offset + "&limit=" + PAGE);
    if (stopped) return;
    if (!r.ok) { showError(err, r.error); break; }
    const t0 = performance.now();
    if (first) grid.setItems(r.data.items); else grid.append(r.data.items);
    const ms = performance.now() - t0;
    // From the whole answer having arrived (JSON parsing included) to the grid drawn.
    const sinceData = performance.now() - r.receivedAt;
    if (first) { window.hearthPerf.firstPageRenderMs = ms; window.hearthPerf.firstPageSinceDataMs = sinceData; }
    window.hearthPerf.maxPageSinceDataMs = Math.max(window.hearthPerf.maxPageSinceDataMs || 0, sinceData);
    for (const it of r.data.items) for (const g of it.genres || []) genres.add(g);
    first = false;
    offset = r.data.offset + r.data.items.length;
    count.textContent = grid.items.length + (r.data.more ? "+" : "") + (grid.items.length === 1 ? " title" : " titles");
    if (!r.data.more || !r.data.items.length) break;
  }
  loaded = true;
  window.hearthPerf.libraryItems = grid.items.length;
  window.hearthPerf.libraryLoadedAt = performance.now();
  for (const g of [...genres].sort()) if (g !== genre) genreSel.append(h("option", { value: g }, g));
  if (!grid.items.length) count.textContent = genre ? "Nothing in this genre." : "Nothing here yet.";
}

async function groupGrid(lib, group, href, meta) {
  const grid = new VirtualGrid({ label: lib.name, mode: prefs.get("view", "grid"), href });
  onLeave(() => grid.destroy(), grid.el);
  const r = await api("GET", "/api/v1/libraries/" + lib.id + "/browse/" + group);
  if (!r.ok) { errorPage(lib.name, r.error); return; }
  const entries = r.data.map((g) => Object.assign({}, g, { title: g.name, year: meta(g) }));
  render(h("section", { class: "wide library", "aria-labelledby": "title" },
    crumbs(["Home", "#/"], [lib.name, "#/library/" + lib.id]),
    h("div", { class: "page-head" }, h("h1", { id: "title" }, lib.name), h("p", { class: "muted" }, entries.length + " " + (group === "shows" ? "shows" : "artists"))),
    entries.length ? grid.el : h("p", { class: "muted" }, "Nothing here yet.")));
  grid.setItems(entries);
}

async function seasonsPage(lib, show) {
  const r = await api("GET", "/api/v1/libraries/" + lib.id + "/browse/seasons?show=" + enc(show));
  if (!r.ok) { errorPage(show, r.error); return; }
  if (r.data.length === 1) return episodesPage(lib, show, String(r.data[0].season === null ? "" : r.data[0].season), true);
  render(h("section", { class: "wide", "aria-labelledby": "title" },
    crumbs(["Home", "#/"], [lib.name, "#/library/" + lib.id], [show, ""]),
    h("h1", { id: "title" }, show),
    h("ul", { class: "libtiles" }, r.data.map((s) => h("li", {}, h("a", { class: "libtile", href: "#/library/" + lib.id + "/show/" + enc(show) + "/season/" + (s.season === null ? "" : s.season) },
      h("span", { class: "title" }, s.season === null ? "Specials" : "Season " + s.season), h("span", { class: "hint" }, s.episodes + (s.episodes === 1 ? " episode" : " episodes"))))))));
}

async function episodesPage(lib, show, season, only) {
  const r = await api("GET", "/api/v1/libraries/" + lib.id + "/browse/episodes?show=" + enc(show) + (season !== "" && season !== undefined ? "&season=" + enc(season) : ""));
  if (!r.ok) { errorPage(show, r.error); return; }
  const title = only ? show : show + " · " + (season === "" ? "Specials" : "Season " + season);
  render(h("section", { class: "wide", "aria-labelledby": "title" },
    crumbs(["Home", "#/"], [lib.name, "#/library/" + lib.id], ...(only ? [[show, ""]] : [[show, "#/library/" + lib.id + "/show/" + enc(show)], ["Season " + season, ""]])),
    h("h1", { id: "title" }, title),
    h("ol", { class: "episodes" }, r.data.map((e) => h("li", {},
      h("a", { href: "#/item/" + e.id, class: "episode" }, poster(e, "thumb"),
        h("span", {}, h("span", { class: "title" }, (e.episode ? e.episode + ". " : e.air_date ? e.air_date + " · " : "") + e.title),
          h("span", { class: "hint" }, [duration(e.duration_ms), e.watch && e.watch.watched ? "watched" : null].filter(Boolean).join(" · ")),
          e.plot ? h("span", { class: "plot" }, e.plot) : null)),
      h("a", { class: "button", href: "#/play/" + e.id, "aria-label": "Play: " + e.title }, "Play"))))));
}

async function albumsPage(lib, artist) {
  const r = await api("GET", "/api/v1/libraries/" + lib.id + "/browse/albums?artist=" + enc(artist));
  if (!r.ok) { errorPage(artist, r.error); return; }
  render(h("section", { class: "wide", "aria-labelledby": "title" },
    crumbs(["Home", "#/"], [lib.name, "#/library/" + lib.id], [artist, ""]),
    h("h1", { id: "title" }, artist),
    h("ul", { class: "grid" }, r.data.map((a) => h("li", {}, h("a", { class: "poster square", href: "#/library/" + lib.id + "/artist/" + enc(artist) + "/album/" + enc(a.name) },
      poster({ name: a.name, artwork_item: a.artwork_item }, "square"), h("span", { class: "title" }, a.name),
      h("span", { class: "hint" }, [a.year, a.tracks + (a.tracks === 1 ? " track" : " tracks")].filter(Boolean).join(" · "))))))));
}

async function tracksPage(lib, artist, album) {
  const r = await api("GET", "/api/v1/libraries/" + lib.id + "/browse/tracks?artist=" + enc(artist) + "&album=" + enc(album));
  if (!r.ok) { errorPage(album, r.error); return; }
  const tracks = r.data;
  render(h("section", { class: "wide", "aria-labelledby": "title" },
    crumbs(["Home", "#/"], [lib.name, "#/library/" + lib.id], [artist, "#/library/" + lib.id + "/artist/" + enc(artist)], [album, ""]),
    h("div", { class: "album-head" }, tracks[0] ? poster({ title: album, has_artwork: tracks[0].has_artwork, id: tracks[0].id }, "square") : null,
      h("div", {}, h("h1", { id: "title" }, album), h("p", { class: "muted" }, artist + " · " + tracks.length + " tracks"),
        h("div", { class: "actions" }, h("button", { type: "button", class: "primary", onclick: () => playQueue(tracks, 0) }, "Play album")))),
    h("ol", { class: "tracks" }, tracks.map((t, i) => h("li", {},
      h("button", { type: "button", class: "track", onclick: () => playQueue(tracks, i) },
        h("span", { class: "num" }, t.track || i + 1), h("span", { class: "title" }, t.title), h("span", { class: "hint" }, duration(t.duration_ms))),
      h("a", { href: "#/item/" + t.id, class: "more", "aria-label": "Details: " + t.title }, "Details"))))));
}

// ---------- photos ----------

async function timelinePage(lib) {
  const r = await api("GET", "/api/v1/libraries/" + lib.id + "/browse/timeline");
  if (!r.ok) { errorPage(lib.name, r.error); return; }
  const all = r.data.flatMap((m) => m.items);
  let n = 0;
  render(h("section", { class: "wide", "aria-labelledby": "title" },
    crumbs(["Home", "#/"], [lib.name, ""]),
    h("h1", { id: "title" }, lib.name),
    all.length ? null : h("p", { class: "muted" }, "No photos yet."),
    r.data.map((m) => h("section", { class: "band", "aria-label": monthName(m.month) }, h("h2", {}, monthName(m.month)),
      h("ul", { class: "photos" }, m.items.map((p) => { const i = n++; return h("li", {}, h("button", { type: "button", class: "photo", onclick: () => lightbox(all, i), "aria-label": "Open " + p.title },
        h("img", { src: artUrl(p.id, 320), srcset: artUrl(p.id, 320) + " 1x, " + artUrl(p.id, 720) + " 2x", alt: p.title, loading: "lazy", decoding: "async" }))); }))))));
}

function monthName(m) {
  if (!m || !/^\d{4}-\d{2}/.test(m)) return m || "Undated";
  const [y, mo] = m.split("-").map(Number);
  return new Date(y, mo - 1, 1).toLocaleDateString(undefined, { year: "numeric", month: "long" });
}

function lightbox(photos, start) {
  let i = start;
  const back = document.activeElement;
  const img = h("img", { alt: "" });
  const caption = h("p", { class: "caption", "aria-live": "polite" });
  const show = () => { const p = photos[i]; img.src = artUrl(p.id, 1920); img.alt = p.title; caption.textContent = p.title + (p.taken_at ? " · " + p.taken_at : "") + " (" + (i + 1) + " of " + photos.length + ")"; };
  const close = () => { dlg.close(); dlg.remove(); if (back) back.focus(); };
  const go = (d) => { i = (i + d + photos.length) % photos.length; show(); };
  const dlg = h("dialog", { class: "lightbox", "aria-label": "Photo viewer", onkeydown: (e) => {
    if (e.key === "ArrowRight") { e.preventDefault(); go(1); } else if (e.key === "ArrowLeft") { e.preventDefault(); go(-1); }
  } }, h("figure", {}, img, h("figcaption", {}, caption)),
  h("div", { class: "actions" },
    h("button", { type: "button", onclick: () => go(-1) }, "Previous"), h("button", { type: "button", onclick: () => go(1) }, "Next"),
    h("button", { type: "button", class: "primary", onclick: close }, "Close")));
  dlg.addEventListener("close", () => { if (dlg.isConnected) { dlg.remove(); if (back) back.focus(); } });
  document.body.append(dlg);
  show();
  dlg.showModal();
  onLeave(() => { if (dlg.isConnected) { dlg.close(); dlg.remove(); } }, main.firstElementChild);
}

// ---------- item page ----------

export async function itemPage(id) {
  const r = await api("GET", "/api/v1/items/" + id);
  if (!r.ok) { errorPage("Not available", r.error); return; }
  const it = r.data;
  const audio = /^audio\//.test(it.content_type);
  const photo = /^image\//.test(it.content_type);
  const pos = it.watch && !it.watch.watched ? it.watch.position_ms : 0;
  const markBtn = h("button", { type: "button", "aria-pressed": String(!!(it.watch && it.watch.watched)), onclick: async () => {
    const now = !(it.watch && it.watch.watched);
    const x = await api("POST", "/api/v1/items/" + it.id + "/watched", { watched: now });
    if (x.ok) { it.watch = x.data; markBtn.textContent = x.data.watched ? "Mark unwatched" : "Mark watched"; markBtn.setAttribute("aria-pressed", String(x.data.watched)); status.textContent = x.data.watched ? "Marked as watched." : "Marked as not watched."; }
  } }, it.watch && it.watch.watched ? "Mark unwatched" : "Mark watched");
  const status = h("p", { class: "hint", role: "status" });
  const v = it.video || {};
  const facts = [
    ["Duration", duration(it.duration_ms || v.duration_ms)],
    ["Video", v.width ? v.width + "×" + v.height + (v.video_codec ? " " + v.video_codec : "") : v.video_codec],
    ["Audio", (v.audio_codecs || []).join(", ") + ((v.audio_languages || []).length ? " (" + v.audio_languages.join(", ") + ")" : "")],
    ["Subtitles", [...(it.subtitles || []).map((s) => (s.language || "unknown") + " (" + s.format + ")"), v.subtitle_tracks ? v.subtitle_tracks + " inside the file" : null].filter(Boolean).join(", ")],
    ["Container", v.container],
    ["File", it.content_type + " · " + bytes(it.size)],
    ["Added", new Date(it.added_at * 1000).toLocaleDateString()],
    ["Taken", it.taken_at],
    ["Artist", it.artist], ["Album", it.album],
    ["People", (it.people || []).slice(0, 8).join(", ")],
    ["Labels", (it.tags || []).join(", ")],
  ].filter(([, val]) => val);
  const subtitle = [it.show ? it.show + (it.season !== null && it.season !== undefined ? " · Season " + it.season + ", episode " + (it.episode || "?") : "") : null,
    it.year, ratingText(it.rating), (it.genres || []).join(", ")].filter(Boolean).join(" · ");
  const playLabel = pos > 0 ? "Resume from " + clockText(pos) : "Play";
  // What playing it here will do (plays as it is, or what gets converted and why).
  const how = h("p", { class: "hint", id: "item-how" });
  if (!audio && !photo) {
    api("POST", "/api/v1/items/" + it.id + "/play", { caps: browserCaps(), dry_run: true }).then((x) => {
      if (x.ok) how.textContent = x.data.method === "direct_play" ? "Plays in this browser as it is." : x.data.summary;
    });
  }
  const actions = photo ? [] : [
    audio ? h("button", { type: "button", class: "primary", onclick: () => playQueue([it], 0) }, "Play")
      : h("a", { class: "button primary", href: "#/play/" + it.id }, playLabel),
    pos > 0 && !audio ? h("a", { class: "button", href: "#/play/" + it.id + "?from=start" }, "Play from the start") : null,
  ];
  const editSlot = h("div", { class: "item-edit" });
  render(h("article", { class: "wide item", "aria-labelledby": "title" },
    it.has_artwork ? h("div", { class: "backdrop", "aria-hidden": "true" }, h("img", { src: "/api/v1/items/" + it.id + "/artwork", alt: "" })) : null,
    h("div", { class: "item-grid" },
      photo ? h("img", { class: "photo-full", src: it.stream_url, alt: it.title }) : poster(it, "big"),
      h("div", { class: "item-info" },
        h("h1", { id: "title" }, it.title),
        subtitle ? h("p", { class: "muted" }, subtitle) : null,
        pos > 0 && it.duration_ms ? h("div", { class: "resume" }, progressBar(pos, it.duration_ms, "Watched " + clockText(pos) + " of " + clockText(it.duration_ms))) : null,
        h("div", { class: "actions" }, ...actions, photo ? null : markBtn), status, how,
        it.plot ? h("p", { class: "plot" }, it.plot) : null,
        h("dl", { class: "facts" }, facts.map(([k, val]) => [h("dt", {}, k), h("dd", {}, val)])))),
      editSlot));
  if (isOwner() && !audio && !photo) {
    const ed = await overrideEditor(it, () => itemPage(id));
    if (ed && editSlot.isConnected) editSlot.replaceChildren(ed);
  }
}

function clockText(ms) {
  const s = Math.floor(ms / 1000);
  const hh = Math.floor(s / 3600);
  return (hh ? hh + ":" + String(Math.floor(s / 60) % 60).padStart(2, "0") : Math.floor(s / 60)) + ":" + String(s % 60).padStart(2, "0");
}

// ---------- search ----------

export function searchPage(initialQuery) {
  const input = h("input", { id: "search-input", type: "search", autocomplete: "off", spellcheck: "false", value: initialQuery || "",
    placeholder: "Titles, shows, artists, people, genres", "aria-describedby": "search-count", "aria-controls": "search-results" });
  const count = h("p", { class: "hint", id: "search-count", role: "status" });
  const results = h("ul", { class: "grid", id: "search-results", "aria-label": "Search results" });
  let seq = 0;
  let timer = 0;
  const run = async () => {
    const q = input.value.trim();
    history.replaceState(null, "", "#/search" + (q ? "?q=" + enc(q) : ""));
    const mine = ++seq;
    if (!q) { results.replaceChildren(); count.textContent = ""; return; }
    const r = await api("GET", "/api/v1/search?q=" + enc(q) + "&limit=60");
    if (mine !== seq) return; // a newer query is on its way
    if (!r.ok) { count.textContent = r.error.message; return; }
    results.replaceChildren(...r.data.map((it) => h("li", {}, posterCard(it))));
    count.textContent = r.data.length ? r.data.length + (r.data.length === 1 ? " result" : " results") : "Nothing matches “" + q + "”.";
  };
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(run, 150); });
  onLeave(() => clearTimeout(timer), input);
  render(h("section", { class: "wide", "aria-labelledby": "title" },
    h("h1", { id: "title", class: "visually-hidden" }, "Search"),
    h("div", { role: "search", class: "searchbox" }, h("label", { for: "search-input" }, "Search"), input), count, results));
  input.focus();
  if (initialQuery) run();
}

export function focusMain() { main.focus(); }
