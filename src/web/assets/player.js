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

export async function playerPage(id, fromStart) {
  const r = await api("GET", "/api/v1/items/" + id);
  if (!r.ok) { errorPage("Not available", r.error); return; }
  const it = r.data;
  const audio = /^audio\//.test(it.content_type);
  if (audio) { playQueue([it], 0); location.replace("#/item/" + it.id); return; }
  const video = h("video", { controls: true, preload: "metadata", autoplay: true, playsinline: true, class: "player", src: it.stream_url, "aria-label": it.title });
  (it.subtitles || []).forEach((sub, i) => {
    video.append(h("track", { kind: "subtitles", src: sub.url, srclang: sub.language || "und", label: sub.language ? langName(sub.language) : "Subtitles " + (i + 1) }));
  });
  const note = h("p", { class: "notice", role: "alert", hidden: true });
  const status = h("p", { class: "hint", role: "status", id: "player-status" });
  const cannot = (why) => {
    note.hidden = false;
    note.textContent = "This browser cannot play this file (" + it.content_type + (it.video && it.video.video_codec ? ", " + it.video.video_codec : "") + "). " +
      (why ? why + " " : "") + "Hearth plays files as they are, without converting them; try another browser or a player app on the same network.";
  };
  // Warn early when the browser says outright it does not know the type.
  if (!video.canPlayType(it.content_type) && !/matroska/.test(it.content_type)) cannot();
  video.addEventListener("error", () => cannot(video.error && video.error.code === 4 ? "The format or codec is not supported here." : ""));

  const resumeAt = fromStart || !(it.watch && !it.watch.watched) ? 0 : it.watch.position_ms / 1000;
  video.addEventListener("loadedmetadata", () => {
    if (resumeAt > 0 && resumeAt < video.duration) {
      video.currentTime = resumeAt;
      status.textContent = "Resumed at " + clock(resumeAt) + ".";
    }
    // Subtitles start off; C or the menu turns the first on. A choice made
    // before the metadata arrived is kept, not switched off again.
    setSubs(Number(subSelect.value));
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
  const unload = () => save(true);
  window.addEventListener("pagehide", unload);
  onLeave(() => { save(true); window.removeEventListener("pagehide", unload); document.removeEventListener("keydown", keys); video.pause(); video.removeAttribute("src"); video.load(); }, video);

  const subSelect = h("select", { id: "subs", "aria-label": "Subtitles" }, h("option", { value: "-1" }, "Subtitles off"),
    (it.subtitles || []).map((s, i) => h("option", { value: String(i) }, s.language ? langName(s.language) : "Subtitles " + (i + 1))));
  const setSubs = (n) => { [...video.textTracks].forEach((t, i) => { t.mode = i === n ? "showing" : "disabled"; }); subSelect.value = String(n); };
  subSelect.addEventListener("change", () => setSubs(Number(subSelect.value)));
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
    stage, note,
    h("div", { class: "toolbar" },
      h("a", { class: "button", href: "#/item/" + it.id }, "Back"),
      h("button", { type: "button", onclick: fullscreen }, "Full screen"),
      (it.subtitles || []).length ? subSelect : null, status),
    h("details", { class: "shortcuts" }, h("summary", {}, "Keyboard shortcuts"),
      h("dl", { class: "facts" }, SHORTCUTS.map(([k, v]) => [h("dt", {}, h("kbd", {}, k)), h("dd", {}, v)])))));
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
