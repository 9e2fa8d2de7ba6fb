// Playback: the full-page video player (resume, progress saved as you watch, subtitles,
// keyboard shortcuts, full screen, a plain message when the browser cannot play a format)
// and the persistent mini-player for music, which keeps playing while you browse.
import { h, api, render, errorPage, onLeave, clock, icon } from "./core.js";

const SAVE_EVERY_MS = 5000;

// Saves the position; `keepalive` lets the request finish while the page unloads.
function saveProgress(id, seconds, keepalive) {
  const body = JSON.stringify({ position_ms: Math.floor(seconds * 1000) });
  return fetch("/api/v1/items/" + id + "/progress", { method: "PUT", credentials: "same-origin", keepalive: !!keepalive,
    headers: { "Content-Type": "application/json" }, body }).catch(() => null);
}

const SHORTCUTS = [
  ["Space or K", "play / pause"], ["← / J", "back 10 s"], ["→ / L", "forward 10 s"], ["↑ / ↓", "volume"],
  ["M", "mute"], ["C", "subtitles on / off"], ["F", "full screen"], ["Esc", "back to the title"],
];

// What this browser plays, told to the server so it can choose direct play, direct stream
// (repackaged, sound converted) or a conversion. Asked of the browser, never assumed.
export function browserCaps() {
  const v = document.createElement("video");
  const mse = window.MediaSource && MediaSource.isTypeSupported ? (t) => MediaSource.isTypeSupported(t) : () => false;
  const can = (t) => v.canPlayType(t) !== "" || mse(t);
  const containers = [];
  if (v.canPlayType("video/mp4")) containers.push("mp4");
  if (v.canPlayType("video/webm")) containers.push("webm");
  if (v.canPlayType('video/x-matroska; codecs="avc1.640028"')) containers.push("matroska");
  if (v.canPlayType("audio/mpeg")) containers.push("mp3");
  if (v.canPlayType("audio/ogg")) containers.push("ogg");
  if (v.canPlayType("audio/flac")) containers.push("flac");
  if (v.canPlayType("audio/wav")) containers.push("wav");
  const video = [];
  const addVideo = (codec, eight, ten) => {
    if (!can('video/mp4; codecs="' + eight + '"') && !can('video/webm; codecs="' + eight + '"')) return;
    video.push({ codec, profiles: [], max_bit_depth: ten && (can('video/mp4; codecs="' + ten + '"') || can('video/webm; codecs="' + ten + '"')) ? 10 : 8 });
  };
  addVideo("h264", "avc1.640033", "avc1.6e0033");
  addVideo("hevc", "hvc1.1.6.L120.90", "hvc1.2.4.L120.90");
  addVideo("vp9", "vp09.00.10.08", "vp09.02.10.10");
  addVideo("av1", "av01.0.05M.08", "av01.0.05M.10");
  addVideo("vp8", "vp8", null);
  const audio = [];
  const addAudio = (codec, types, channels) => { if (types.some(can)) audio.push({ codec, max_channels: channels }); };
  addAudio("aac", ['audio/mp4; codecs="mp4a.40.2"'], 6);
  addAudio("mp3", ["audio/mpeg", 'audio/mp4; codecs="mp4a.6B"'], 2);
  addAudio("opus", ['audio/webm; codecs="opus"', 'audio/mp4; codecs="opus"'], 8);
  addAudio("vorbis", ['audio/webm; codecs="vorbis"'], 8);
  addAudio("flac", ['audio/mp4; codecs="flac"', "audio/flac"], 8);
  addAudio("ac3", ['audio/mp4; codecs="ac-3"'], 6);
  addAudio("eac3", ['audio/mp4; codecs="ec-3"'], 8);
  const hls = v.canPlayType("application/vnd.apple.mpegurl") !== "";
  return { containers, video, audio, hls_fmp4: hls, webvtt: true };
}

const QUALITIES = [[0, "Original"], [8e6, "8 Mbit/s"], [4e6, "4 Mbit/s"], [2e6, "2 Mbit/s"], [1e6, "1 Mbit/s"]];

export async function playerPage(id, fromStart) {
  const r = await api("GET", "/api/v1/items/" + id);
  if (!r.ok) { errorPage("Not available", r.error); return; }
  const it = r.data;
  const audio = /^audio\//.test(it.content_type);
  if (audio) { playQueue([it], 0); location.replace("#/item/" + it.id); return; }
  const video = h("video", { controls: true, preload: "metadata", autoplay: true, playsinline: true, class: "player", "aria-label": it.title });
  const note = h("p", { class: "notice", role: "alert", hidden: true });
  const status = h("p", { class: "hint", role: "status", id: "player-status" });
  const how = h("p", { class: "hint", id: "player-how" });
  const caps = browserCaps();
  const cannot = (why) => {
    note.hidden = false;
    note.textContent = "This browser cannot play this file (" + it.content_type + (it.video && it.video.video_codec ? ", " + it.video.video_codec : "") + "). " +
      (why ? why + " " : "");
  };
  // What plays now: the answer of the last /play request.
  const cur = { view: null, session: null, audio: null, subtitle: null, bitrate: 0, startAt: 0, burn: null };
  const stopSession = () => {
    if (!cur.session) return;
    fetch("/api/v1/play/" + cur.session, { method: "DELETE", credentials: "same-origin", keepalive: true }).catch(() => null);
    cur.session = null;
  };
  // Asks the server how to play with the current choices, then loads the answer at `at` s.
  const load = async (at) => {
    const body = { caps, audio: cur.audio, subtitle: cur.burn, max_bitrate: cur.bitrate || null };
    const p = await api("POST", "/api/v1/items/" + it.id + "/play", body);
    if (!p.ok) { cannot(p.error || "The server could not prepare it."); return; }
    stopSession();
    cur.view = p.data;
    cur.session = p.data.session || null;
    cur.startAt = at;
    how.textContent = p.data.method === "direct_play" ? "" : p.data.summary;
    video.dataset.method = p.data.method;
    note.hidden = true;
    [...video.querySelectorAll("track")].forEach((t) => t.remove());
    subtitleTracks().forEach((t) => video.append(h("track", { kind: "subtitles", src: t.url, srclang: t.language || "und", label: t.label })));
    video.src = p.data.url;
    buildMenus();
  };
  // Text subtitles the player shows itself: sidecar files, then tracks inside the file.
  const subtitleTracks = () => {
    const side = (it.subtitles || []).map((s, i) => ({ url: s.url, language: s.language, label: s.language ? langName(s.language) : "Subtitles " + (i + 1) }));
    const inside = ((cur.view && cur.view.subtitles) || []).filter((s) => s.url)
      .map((s, i) => ({ url: s.url, language: s.language, label: (s.language ? langName(s.language) : "Track " + (i + 1)) + " (" + s.codec + ")" }));
    return side.concat(inside);
  };
  video.addEventListener("error", () => {
    const code = video.error && video.error.code;
    if (cur.session) {
      // The conversion stopped: ffmpeg could not read on (the segment request said why).
      note.hidden = false;
      note.textContent = "This film stops playing at " + clock(video.currentTime) + ": the file seems damaged or incomplete from there. Copying it again from its source usually fixes this.";
    }
    else cannot(code === 4 ? "The format or codec is not supported here, and this device could not convert it." : "");
  });

  const resumeAt = fromStart || !(it.watch && !it.watch.watched) ? 0 : it.watch.position_ms / 1000;
  video.addEventListener("loadedmetadata", () => {
    const at = cur.startAt;
    if (at > 0 && (!(video.duration > 0) || at < video.duration)) {
      video.currentTime = at;
      if (at === resumeAt) status.textContent = "Resumed at " + clock(at) + ".";
    }
    cur.startAt = 0;
    // Subtitles start off; C or the menu turns the first on. A choice made before the
    // metadata arrived is kept, not switched off again.
    setSubs(subSelect.value);
  });
  let lastSaved = -1;
  let lastAt = 0;
  const save = (keepalive) => {
    if (!(video.currentTime > 0)) return;
    if (Math.abs(video.currentTime - lastSaved) < 0.5) return;
    lastSaved = video.currentTime;
    lastAt = Date.now();
    saveProgress(it.id, video.currentTime, keepalive);
  };
  video.addEventListener("timeupdate", () => { if (Date.now() - lastAt >= SAVE_EVERY_MS) save(false); });
  video.addEventListener("pause", () => save(false));
  video.addEventListener("seeked", () => save(false));
  video.addEventListener("ended", () => api("POST", "/api/v1/items/" + it.id + "/watched", { watched: true }));
  const unload = () => { save(true); stopSession(); };
  window.addEventListener("pagehide", unload);
  onLeave(() => { save(true); stopSession(); window.removeEventListener("pagehide", unload); document.removeEventListener("keydown", keys); video.pause(); video.removeAttribute("src"); video.load(); }, video);

  // Menus: subtitles (shown by the player, or drawn into the picture), sound, quality.
  const subSelect = h("select", { id: "subs", "aria-label": "Subtitles" });
  const audioSelect = h("select", { id: "audio-track", "aria-label": "Sound" });
  const qualitySelect = h("select", { id: "quality", "aria-label": "Quality" },
    QUALITIES.map(([b, label]) => h("option", { value: String(b) }, label)));
  const menus = h("span", { class: "menus" });
  const setSubs = (value) => {
    const v = String(value);
    if (v.startsWith("b")) return; // a drawn-in track is a different stream, not a text track
    const n = Number(v);
    [...video.textTracks].forEach((t, i) => { t.mode = i === n ? "showing" : "disabled"; });
    subSelect.value = v;
  };
  const buildMenus = () => {
    const keep = subSelect.value || (cur.burn != null ? "b" + cur.burn : "-1");
    subSelect.replaceChildren(h("option", { value: "-1" }, "Subtitles off"),
      ...subtitleTracks().map((t, i) => h("option", { value: String(i) }, t.label)),
      ...((cur.view && cur.view.subtitles) || []).filter((s) => !s.url)
        .map((s) => h("option", { value: "b" + s.index }, (s.language ? langName(s.language) : "Track " + s.index) + " (drawn into the picture)")));
    subSelect.value = [...subSelect.options].some((o) => o.value === keep) ? keep : "-1";
    const tracks = (cur.view && cur.view.audio) || [];
    audioSelect.replaceChildren(...tracks.map((a, i) => h("option", { value: String(a.index) },
      (a.language ? langName(a.language) : "Sound " + (i + 1)) + " · " + a.codec.toUpperCase() + (a.channels > 2 ? " " + (a.channels === 6 ? "5.1" : a.channels + " ch") : ""))));
    if (cur.audio != null) audioSelect.value = String(cur.audio);
    menus.replaceChildren(subSelect.options.length > 1 ? subSelect : "", tracks.length > 1 ? audioSelect : "", qualitySelect);
  };
  subSelect.addEventListener("change", () => {
    const v = subSelect.value;
    if (v.startsWith("b")) { cur.burn = Number(v.slice(1)); load(video.currentTime); return; }
    if (cur.burn != null) { cur.burn = null; setSubs(v); load(video.currentTime).then(() => setSubs(v)); return; }
    setSubs(v);
  });
  audioSelect.addEventListener("change", () => { cur.audio = Number(audioSelect.value); load(video.currentTime); });
  qualitySelect.addEventListener("change", () => { cur.bitrate = Number(qualitySelect.value); load(video.currentTime); });

  const stage = h("div", { class: "stage" }, video);
  const fullscreen = () => { if (document.fullscreenElement) document.exitFullscreen(); else stage.requestFullscreen().catch(() => null); };

  const keys = (e) => {
    if (e.target.closest && e.target.closest("input, select, textarea")) return;
    const k = e.key;
    let done = true;
    if (k === " " || k === "k" || k === "MediaPlayPause") { if (video.paused) video.play(); else video.pause(); }
    else if (k === "ArrowLeft" || k === "j") video.currentTime = Math.max(0, video.currentTime - 10);
    else if (k === "ArrowRight" || k === "l") video.currentTime = Math.min(video.duration || 1e9, video.currentTime + 10);
    else if (k === "ArrowUp") video.volume = Math.min(1, video.volume + 0.1);
    else if (k === "ArrowDown") video.volume = Math.max(0, video.volume - 0.1);
    else if (k === "m") video.muted = !video.muted;
    else if (k === "f") fullscreen();
    else if (k === "c") { const on = [...video.textTracks].findIndex((t) => t.mode === "showing"); setSubs(on >= 0 ? -1 : (video.textTracks.length ? 0 : -1)); }
    else if (k === "Escape" && !document.fullscreenElement) location.hash = "#/item/" + it.id;
    else done = false;
    if (done) e.preventDefault();
  };
  document.addEventListener("keydown", keys);

  render(h("section", { class: "wide player-page", "aria-labelledby": "title" },
    h("h1", { id: "title" }, it.title + (it.year ? " (" + it.year + ")" : "")),
    stage, note, how,
    h("div", { class: "toolbar" },
      h("a", { class: "button", href: "#/item/" + it.id }, "Back"),
      h("button", { type: "button", onclick: fullscreen }, "Full screen"),
      menus, status),
    h("details", { class: "shortcuts" }, h("summary", {}, "Keyboard shortcuts"),
      h("dl", { class: "facts" }, SHORTCUTS.map(([k, v]) => [h("dt", {}, h("kbd", {}, k)), h("dd", {}, v)])))));
  buildMenus();
  await load(resumeAt);
  // Focus the video so shortcuts and the remote work at once.
  video.focus();
}

function langName(code) {
  try { return new Intl.DisplayNames([navigator.language || "en"], { type: "language" }).of(code) || code; } catch (e) { return code; }
}

// ---------- mini-player ----------

const mini = { queue: [], index: 0, el: null, audio: null, title: null, toggle: null };

function buildMini() {
  const audio = h("audio", { preload: "metadata" });
  const title = h("span", { class: "mini-title", "aria-live": "polite" });
  const time = h("span", { class: "hint mini-time" });
  const toggle = h("button", { type: "button", "aria-label": "Pause" }, icon("pause"));
  const prev = h("button", { type: "button", "aria-label": "Previous track" }, icon("prev"));
  const next = h("button", { type: "button", "aria-label": "Next track" }, icon("next"));
  const close = h("button", { type: "button", "aria-label": "Stop and close the player" }, icon("close"));
  const seek = h("input", { type: "range", min: "0", max: "1000", value: "0", "aria-label": "Position in track" });
  toggle.addEventListener("click", () => { if (audio.paused) audio.play(); else audio.pause(); });
  prev.addEventListener("click", () => playIndex(mini.index - 1));
  next.addEventListener("click", () => playIndex(mini.index + 1));
  close.addEventListener("click", () => { audio.pause(); audio.removeAttribute("src"); mini.el.hidden = true; document.body.classList.remove("has-mini"); });
  seek.addEventListener("input", () => { if (audio.duration) audio.currentTime = (seek.value / 1000) * audio.duration; });
  audio.addEventListener("play", () => { toggle.replaceChildren(icon("pause")); toggle.setAttribute("aria-label", "Pause"); });
  audio.addEventListener("pause", () => { toggle.replaceChildren(icon("play")); toggle.setAttribute("aria-label", "Play"); });
  audio.addEventListener("timeupdate", () => {
    time.textContent = clock(audio.currentTime) + " / " + clock(audio.duration || 0);
    if (audio.duration && document.activeElement !== seek) seek.value = String(Math.round((audio.currentTime / audio.duration) * 1000));
  });
  audio.addEventListener("ended", () => playIndex(mini.index + 1));
  audio.addEventListener("error", () => { title.textContent = "This browser cannot play " + (mini.queue[mini.index] || {}).title + "."; });
  const el = document.getElementById("mini");
  el.replaceChildren(audio, h("div", { class: "mini-controls" }, prev, toggle, next), h("div", { class: "mini-info" }, title, time, seek), close);
  Object.assign(mini, { el, audio, title, toggle });
}

function playIndex(i) {
  if (i < 0 || i >= mini.queue.length) return;
  mini.index = i;
  const t = mini.queue[i];
  mini.audio.src = t.stream_url;
  mini.title.textContent = t.title + (t.artist ? " — " + t.artist : "");
  mini.audio.play().catch(() => null);
}

export function playQueue(tracks, start) {
  if (!mini.el) buildMini();
  mini.queue = tracks.slice();
  mini.el.hidden = false;
  document.body.classList.add("has-mini");
  playIndex(start || 0);
}
