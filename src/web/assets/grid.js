// A virtualised poster grid (or list): only the rows on screen exist in the DOM, so a
// library of 20,000 titles renders as fast as one of 20. Keyboard and TV-remote arrows move
// a single focus through it (roving tabindex); the page scrolls with it.
import { h, poster, ratingText, duration } from "./core.js";

const GAP = 16;
const LIST_ROW = 64;
const BUFFER_ROWS = 3;

export class VirtualGrid {
  // opts: { label, mode: "grid"|"list", minWidth, href(item), onOpen(item, index) }
  constructor(opts) {
    this.opts = Object.assign({ mode: "grid", minWidth: 150 }, opts);
    this.items = [];
    this.nodes = new Map();
    this.active = 0;
    this.layout = null;
    this.frame = 0;
    this.el = h("div", { class: "vgrid " + this.opts.mode, role: "list", "aria-label": this.opts.label || "Titles" });
    this.el.addEventListener("keydown", (e) => this.key(e));
    this.el.addEventListener("focusin", (e) => {
      const card = e.target.closest("[data-index]");
      if (card) this.active = Number(card.dataset.index);
    });
    this.onScroll = () => this.schedule();
    this.onResize = () => { this.layout = null; this.schedule(); };
    window.addEventListener("scroll", this.onScroll, { passive: true });
    window.addEventListener("resize", this.onResize);
  }

  destroy() {
    window.removeEventListener("scroll", this.onScroll);
    window.removeEventListener("resize", this.onResize);
    cancelAnimationFrame(this.frame);
  }

  setMode(mode) {
    this.opts.mode = mode;
    this.el.className = "vgrid " + mode;
    this.clear();
    this.layout = null;
    this.render();
  }

  // Replaces the items (new sort or filter); renders synchronously and returns the time.
  setItems(items) {
    const t0 = performance.now();
    this.items = items;
    this.active = Math.min(this.active, Math.max(0, items.length - 1));
    this.clear();
    this.render();
    return performance.now() - t0;
  }

  // More items arrived (the next page): only the height and maybe the visible rows change.
  append(more) {
    for (const it of more) this.items.push(it);
    this.render();
  }

  clear() {
    for (const n of this.nodes.values()) n.remove();
    this.nodes.clear();
  }

  measure() {
    const width = this.el.clientWidth || window.innerWidth;
    if (this.opts.mode === "list") {
      this.layout = { cols: 1, cardW: width, rowH: LIST_ROW, width };
      return;
    }
    const min = this.opts.minWidth;
    const cols = Math.max(2, Math.floor((width + GAP) / (min + GAP)));
    const cardW = (width - GAP * (cols - 1)) / cols;
    // Poster 2:3 plus two lines of text.
    const textH = 52;
    this.layout = { cols, cardW, rowH: Math.round(cardW * 1.5 + textH + GAP), width };
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); });
  }

  render() {
    if (!this.layout) this.measure();
    const { cols, rowH, cardW } = this.layout;
    const rows = Math.ceil(this.items.length / cols);
    this.el.style.height = Math.max(rows * rowH - (this.opts.mode === "list" ? 0 : GAP), 0) + "px";
    const top = -this.el.getBoundingClientRect().top;
    const view = window.innerHeight;
    const first = Math.max(0, Math.floor(top / rowH) - BUFFER_ROWS);
    const last = Math.min(rows - 1, Math.ceil((top + view) / rowH) + BUFFER_ROWS);
    const from = first * cols;
    const to = Math.min(this.items.length, (last + 1) * cols);
    // Keep the focused card even when it scrolled away, so focus is never lost.
    for (const [i, n] of this.nodes) {
      if ((i < from || i >= to) && n !== document.activeElement && !n.contains(document.activeElement)) {
        n.remove();
        this.nodes.delete(i);
      }
    }
    const frag = document.createDocumentFragment();
    for (let i = from; i < to; i++) {
      let n = this.nodes.get(i);
      if (!n) {
        n = this.card(this.items[i], i);
        this.nodes.set(i, n);
        frag.append(n);
      }
      const x = this.opts.mode === "list" ? 0 : (i % cols) * (cardW + GAP);
      const y = Math.floor(i / cols) * rowH;
      n.style.transform = "translate(" + Math.round(x) + "px," + y + "px)";
      n.style.width = Math.floor(cardW) + "px";
      n.firstChild.tabIndex = i === this.active ? 0 : -1;
    }
    if (frag.childNodes.length) this.el.append(frag);
  }

  card(it, i) {
    const href = this.opts.href(it);
    const meta = [it.year, ratingText(it.rating), this.opts.mode === "list" && it.duration_ms ? duration(it.duration_ms) : null].filter(Boolean).join(" · ");
    const watched = it.watch && it.watch.watched;
    const a = h("a", { class: "card-link " + (this.opts.mode === "list" ? "row" : "poster"), href, "data-index": String(i) },
    this.opts.mode === "list" ? null : poster(it),
    h("span", { class: "title" }, it.title || it.name),
    h("span", { class: "hint" }, meta || "\u00a0"),
    watched ? h("span", { class: "badge" }, "Watched") : null);
    return h("div", { class: "cell", role: "listitem", "aria-posinset": String(i + 1), "aria-setsize": String(this.items.length) }, a);
  }

  key(e) {
    if (!this.layout || !this.items.length) return;
    const cols = this.layout.cols;
    const perPage = cols * Math.max(1, Math.floor(window.innerHeight / this.layout.rowH));
    const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: cols, ArrowUp: -cols, PageDown: perPage, PageUp: -perPage }[e.key];
    let next = null;
    if (step) next = this.active + step;
    else if (e.key === "Home") next = 0;
    else if (e.key === "End") next = this.items.length - 1;
    if (next === null) return;
    if (e.key === "ArrowUp" && this.active < cols) return; // let focus leave the grid upwards
    e.preventDefault();
    this.focusIndex(Math.max(0, Math.min(this.items.length - 1, next)));
  }

  // Scrolls to an item, renders it and focuses it.
  focusIndex(i) {
    if (!this.layout) this.measure();
    this.active = i;
    const y = Math.floor(i / this.layout.cols) * this.layout.rowH;
    const gridTop = this.el.getBoundingClientRect().top + window.scrollY;
    const want = gridTop + y;
    const bottom = want + this.layout.rowH;
    if (want < window.scrollY + 80 || bottom > window.scrollY + window.innerHeight) {
      window.scrollTo(0, Math.max(0, want - 96));
    }
    this.render();
    const n = this.nodes.get(i);
    if (n) n.firstChild.focus({ preventScroll: true });
  }
}
