// The message list: virtual scroll over any folder size. Rows have a fixed height; only the
// visible rows (plus a few) are in the DOM. Windows of PAGE positions are fetched by
// Email/query (position, collapseThreads) with Email/get of the list properties in the same
// request (a back-reference), so any row of a 100,000-message folder is one request away;
// the pages a jump lands on come in one request, their neighbours are fetched while idle,
// and the first window of the page comes in the page's first request (app.js).
import { ref } from "./jmap.js";

export const ROW_HEIGHT = 64;
const PAGE = 50;
const OVERSCAN = 6;
export const LIST_PROPERTIES = ["id", "threadId", "mailboxIds", "keywords", "from", "subject",
                                "receivedAt", "size", "preview", "hasAttachment"];
const SORTS = {
  date: [{ property: "receivedAt", isAscending: false }],
  sender: [{ property: "from", isAscending: true }, { property: "receivedAt", isAscending: false }],
  subject: [{ property: "subject", isAscending: true }, { property: "receivedAt", isAscending: false }],
  size: [{ property: "size", isAscending: false }],
};

function dateText(iso) {
  const when = new Date(iso);
  const now = new Date();
  if (when.toDateString() === now.toDateString()) {
    return when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  return when.toLocaleDateString([], { year: when.getFullYear() === now.getFullYear() ? undefined : "numeric",
                                       month: "short", day: "numeric" });
}

export function senderText(email) {
  const from = (email.from || [])[0];
  return from ? (from.name || from.email || "") : "(no sender)";
}

export class MessageList {
  constructor(client, scroller, spacer, events) {
    this.client = client;
    this.scroller = scroller;
    this.spacer = spacer;
    this.events = events;        // EventTarget: "open" (email id), "selection"
    this.emails = new Map();     // id -> Email (list properties)
    this.ids = [];               // position -> id (sparse)
    this.total = 0;
    this.pages = new Map();      // page number -> Promise
    this.retried = new Set();    // "generation:page" windows asked again for a missing row
    this.mailboxId = null;
    this.filter = null;          // a JMAP FilterCondition/Operator instead of the folder (search)
    this.sort = "date";
    this.threads = false;
    this.selected = new Set();
    this.anchor = null;          // position of the last plain click (shift ranges)
    this.focus = 0;              // position of the keyboard cursor
    this.opened = null;
    this.generation = 0;
    this.queryState = null;
    this.rows = new Map();       // position -> element in the DOM
    scroller.addEventListener("scroll", () => this.render(), { passive: true });
    new ResizeObserver(() => this.render()).observe(scroller);
    scroller.addEventListener("keydown", (event) => this.key(event));
  }

  // ``filter``: show what this JMAP filter finds (a search) instead of the folder; every
  // show() without one returns to the folder.  ``first``: the answer to
  // firstWindow(mailboxId) when the caller fetched it already.
  show(mailboxId, { sort = this.sort, threads = this.threads, keepScroll = false, filter = null,
                    first = null } = {}) {
    this.mailboxId = mailboxId;
    this.filter = filter;
    this.sort = sort;
    this.threads = threads;
    this.reset();
    if (first && !keepScroll && sort === "date" && !threads) {
      this.accept(first, 0);
      this.pages.set(0, Promise.resolve());
    }
    if (!keepScroll) {
      this.scroller.scrollTop = 0;
      this.selected.clear();
      this.focus = 0;
      this.anchor = null;
    }
    return this.ensure(this.visibleRange());
  }

  // Forget positions (the folder's order changed), keep the emails we know.
  reset() {
    this.generation += 1;
    this.ids = [];
    this.pages.clear();
    this.retried.clear();
    for (const row of this.rows.values()) row.remove();
    this.rows.clear();
  }

  refresh() { this.reset(); return this.ensure(this.visibleRange()); }

  visibleRange() {
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.floor((top + height) / ROW_HEIGHT) + OVERSCAN;
    return [first, last];
  }

  // Every page the rows first..last touch, fetched in ONE request (a jump lands on up to
  // two pages); then, once they are shown, the pages on either side, in the background, so
  // scrolling on finds its rows already here.
  async ensure([first, last], prefetch = true) {
    const wanted = [];
    const missing = [];
    for (let page = Math.floor(first / PAGE); page <= Math.floor(last / PAGE); page++) {
      if (this.total && page * PAGE >= this.total && page > 0) break;
      if (!this.pages.has(page)) missing.push(page);
    }
    if (missing.length) {
      const fetched = this.fetch(missing);
      for (const page of missing) this.pages.set(page, fetched);
      fetched.catch(() => {   // asked again by the next render
        for (const page of missing) if (this.pages.get(page) === fetched) this.pages.delete(page);
      });
    }
    for (let page = Math.floor(first / PAGE); page <= Math.floor(last / PAGE); page++) {
      if (this.pages.has(page)) wanted.push(this.pages.get(page));
    }
    await Promise.all(wanted);
    this.render();
    if (prefetch) this.prefetch(first, last);
  }

  prefetch(first, last) {
    const generation = this.generation;
    const before = Math.max(0, first - PAGE);
    const after = last + PAGE;
    const idle = window.requestIdleCallback || ((f) => setTimeout(f, 50));
    idle(() => {
      if (generation === this.generation) this.ensure([before, after], false).catch(() => {});
    });
  }

  // The calls for one window: Email/query by position and Email/get of its list properties
  // (a back-reference), ids "q<page>" and "g<page>".
  windowCalls(page) {
    return [
      ["Email/query", { filter: this.filter || { inMailbox: this.mailboxId }, sort: SORTS[this.sort],
                        collapseThreads: this.threads, position: page * PAGE, limit: PAGE,
                        calculateTotal: true }, `q${page}`],
      ["Email/get", { "#ids": ref(`q${page}`, "Email/query", "/ids"), properties: LIST_PROPERTIES },
       `g${page}`],
    ];
  }

  async fetch(pages) {
    const generation = this.generation;
    const out = await this.client.batch(pages.flatMap((page) => this.windowCalls(page)));
    if (generation !== this.generation) return;
    for (const page of pages) this.accept(out, page);
  }

  // An answer to windowCalls(page) (here or in the page's first request, app.js).
  accept(out, page) {
    const query = out[`q${page}`];
    this.total = query.total;
    this.queryState = query.queryState;
    for (const email of out[`g${page}`].list) this.emails.set(email.id, email);
    query.ids.forEach((id, i) => { this.ids[query.position + i] = id; });
    this.spacer.style.height = `${this.total * ROW_HEIGHT}px`;
  }

  // The calls of the first window of ``mailboxId`` (to go into the page's first request)
  // and what to do with their answer: show() with it fetches nothing more.
  static firstWindow(mailboxId, sort = "date", threads = false) {
    const probe = Object.create(MessageList.prototype);
    Object.assign(probe, { mailboxId, sort, threads });
    return probe.windowCalls(0);
  }

  // The emails whose list properties changed (Email/changes): re-read them, redraw.
  async update(ids) {
    const known = ids.filter((id) => this.emails.has(id));
    if (!known.length) return;
    this.apply(await this.client.call("Email/get", { ids: known, properties: LIST_PROPERTIES }));
  }

  // An Email/get answer with the list properties: what we show follows it.
  apply(got) {
    for (const email of got.list) this.emails.set(email.id, email);
    for (const id of got.notFound || []) this.emails.delete(id);
    this.redraw();
  }

  redraw() {
    for (const row of this.rows.values()) row.remove();
    this.rows.clear();
    this.render();
  }

  scrollToPosition(position) {
    this.scroller.scrollTop = position * ROW_HEIGHT;
    return this.ensure(this.visibleRange());
  }

  render() {
    this.spacer.style.height = `${this.total * ROW_HEIGHT}px`;
    const [first, last] = this.visibleRange();
    const end = Math.min(last, this.total - 1);
    for (const [position, row] of this.rows) {
      if (position < first || position > end) { row.remove(); this.rows.delete(position); }
    }
    const missing = new Set();   // windows with a row we cannot draw yet
    for (let position = first; position <= end; position++) {
      const id = this.ids[position];
      const email = id ? this.emails.get(id) : null;
      if (!email) missing.add(Math.floor(position / PAGE));
      const existing = this.rows.get(position);
      if (existing && existing.dataset.id === (id || "")) {
        this.mark(existing, position);
        continue;
      }
      if (existing) existing.remove();
      const row = this.row(position, email);
      this.rows.set(position, row);
      this.spacer.append(row);
    }
    if (missing.size) this.fetchMissing(missing, first, last);
    else if (end >= first && !this.marked) {
      this.marked = true;   // for benchmarks/webmail.py: the first rows of the page are in
      performance.mark("mail:first-rows");
    }
  }

  // Rows without their email: a window not fetched yet, or one fetched while its emails
  // changed (moved, destroyed). Such a window is asked again once per generation; asking
  // ensure() again for a window already here would only render again, and render would call
  // ensure: a loop of resolved promises that starves the page (it hung a test).
  fetchMissing(pages, first, last) {
    let again = false;
    for (const page of pages) {
      if (!this.pages.has(page)) { again = true; continue; }
      const key = `${this.generation}:${page}`;
      if (this.retried.has(key)) continue;
      this.retried.add(key);
      this.pages.delete(page);
      again = true;
    }
    if (again) this.ensure([first, last]);
  }

  mark(row, position) {
    const id = row.dataset.id;
    row.setAttribute("aria-selected", this.selected.has(id) ? "true" : "false");
    row.classList.toggle("ring-2", position === this.focus && document.activeElement === this.scroller);
    row.classList.toggle("bg-sky-50", id === this.opened);
    row.classList.toggle("dark:bg-sky-950", id === this.opened);
  }

  row(position, email) {
    const row = document.createElement("div");
    row.setAttribute("role", "option");
    row.dataset.position = String(position);
    row.dataset.id = email ? email.id : "";
    row.style.transform = `translateY(${position * ROW_HEIGHT}px)`;
    row.style.height = `${ROW_HEIGHT}px`;
    row.className = "absolute inset-x-0 top-0 flex cursor-default flex-col justify-center gap-0.5 " +
      "border-b border-slate-100 px-3 text-sm ring-inset ring-sky-500 aria-selected:bg-sky-100 " +
      "dark:border-slate-900 dark:aria-selected:bg-sky-900";
    if (!email) {
      row.setAttribute("aria-label", "Loading");
      row.innerHTML = '<span class="h-3 w-1/2 rounded bg-slate-100 dark:bg-slate-800"></span>';
      return row;
    }
    const keywords = email.keywords || {};
    const unread = !keywords.$seen;
    const marks = [];
    if (unread) marks.push("unread");
    if (keywords.$flagged) marks.push("flagged");
    if (keywords.$answered) marks.push("answered");
    if (email.hasAttachment) marks.push("has attachment");
    const sender = senderText(email);
    const subject = email.subject || "(no subject)";
    row.setAttribute("aria-label", `${sender}, ${subject}${marks.length ? ", " + marks.join(", ") : ""}`);
    row.dataset.unread = unread ? "1" : "0";
    row.dataset.flagged = keywords.$flagged ? "1" : "0";
    const top = document.createElement("div");
    top.className = "flex items-center gap-1.5";
    const dot = document.createElement("span");
    dot.className = unread ? "h-2 w-2 shrink-0 rounded-full bg-sky-600" : "h-2 w-2 shrink-0";
    dot.setAttribute("aria-hidden", "true");
    const who = document.createElement("span");
    who.className = "truncate " + (unread ? "font-semibold" : "");
    who.textContent = sender;
    const icons = document.createElement("span");
    icons.className = "ml-auto flex shrink-0 items-center gap-1 text-xs " +
      (keywords.$flagged ? "text-red-600 dark:text-red-400" : "text-slate-500 dark:text-slate-400");
    icons.setAttribute("aria-hidden", "true");
    icons.textContent = (keywords.$answered ? "↩ " : "") + (email.hasAttachment ? "📎 " : "") +
      (keywords.$flagged ? "⚑ " : "") + dateText(email.receivedAt);
    top.append(dot, who, icons);
    const bottom = document.createElement("div");
    bottom.className = "truncate text-slate-600 dark:text-slate-400";
    const subjectSpan = document.createElement("span");
    subjectSpan.className = unread ? "font-semibold text-slate-900 dark:text-slate-100" : "text-slate-800 dark:text-slate-200";
    subjectSpan.textContent = subject;
    bottom.append(subjectSpan, document.createTextNode(email.preview ? " — " + email.preview : ""));
    row.append(top, bottom);
    row.addEventListener("click", (event) => this.click(position, event));
    this.mark(row, position);
    return row;
  }

  click(position, event) {
    const id = this.ids[position];
    if (!id) return;
    this.focus = position;
    if (event.shiftKey && this.anchor !== null) {
      const [a, b] = [Math.min(this.anchor, position), Math.max(this.anchor, position)];
      if (!(event.ctrlKey || event.metaKey)) this.selected.clear();
      for (let p = a; p <= b; p++) if (this.ids[p]) this.selected.add(this.ids[p]);
    } else if (event.ctrlKey || event.metaKey) {
      if (this.selected.has(id)) this.selected.delete(id); else this.selected.add(id);
      this.anchor = position;
    } else {
      this.selected = new Set([id]);
      this.anchor = position;
      this.open(id);
    }
    this.selectionChanged();
  }

  open(id) {
    this.opened = id;
    this.events.dispatchEvent(new CustomEvent("open", { detail: id }));
    this.redrawMarks();
  }

  redrawMarks() {
    for (const [position, row] of this.rows) this.mark(row, position);
  }

  selectionChanged() {
    this.redrawMarks();
    this.events.dispatchEvent(new CustomEvent("selection", { detail: [...this.selected] }));
  }

  key(event) {
    const moves = { ArrowDown: 1, ArrowUp: -1, j: 1, k: -1, PageDown: 10, PageUp: -10 };
    if (event.key in moves) {
      event.preventDefault();
      const next = Math.max(0, Math.min(this.total - 1, this.focus + moves[event.key]));
      this.focus = next;
      const top = next * ROW_HEIGHT;
      if (top < this.scroller.scrollTop) this.scroller.scrollTop = top;
      else if (top + ROW_HEIGHT > this.scroller.scrollTop + this.scroller.clientHeight) {
        this.scroller.scrollTop = top + ROW_HEIGHT - this.scroller.clientHeight;
      }
      if (event.shiftKey && this.ids[next]) {
        this.selected.add(this.ids[next]);
        this.selectionChanged();
      }
      this.render();
      this.redrawMarks();
    } else if ((event.key === "Enter" || event.key === "o") && this.ids[this.focus]) {
      event.preventDefault();
      this.selected = new Set([this.ids[this.focus]]);
      this.open(this.ids[this.focus]);
      this.selectionChanged();
    } else if (event.key === "a" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      for (const id of this.ids) if (id) this.selected.add(id);
      this.selectionChanged();
    }
  }
}
