// Actions on messages (issue 13 item 4): delete to Trash (and for good, in Trash, after a
// confirmation), empty Trash, archive, move by a menu or by dragging rows onto a folder,
// read/unread/flag on a multi-selection, mark as spam / not spam, undo of the last move for a
// few seconds, and keyboard shortcuts with a help dialog.
//
// Everything is JMAP Email/set on the server's one mail service: a move is a `mailboxIds`
// change (the same operation as IMAP MOVE, so IMAP clients see it at once and a move into
// Junk trains the user's Bayes filter exactly as an IMAP move does: mail/filing.py), a
// keyword is a `keywords/...` patch, a delete for good is `destroy`.
//
// The module owns #selection-bar (the bulk actions shown while several rows are selected),
// adds buttons to the reading pane's toolbar (api.slots.reader) and "Empty Trash" to the list
// toolbar (api.slots.list). Shortcuts r/a/f/c use api.compose (the compose module) when the
// page has it, looked up at key time.
import { ref } from "./jmap.js";
import { displayName } from "./folders.js";
import { ROW_HEIGHT } from "./list.js";
import { menuKey } from "./menu.js";

const BUTTON = "rounded-md px-2 py-1 hover:bg-slate-100 dark:hover:bg-slate-800";
const SMALL = "rounded-md px-2 py-0.5 hover:bg-slate-100 dark:hover:bg-slate-800";
const UNDO_MS = 8000;
const DRAG_TYPE = "application/x-mailgosend-emails";

export const SHORTCUTS = [
  ["j / k", "Next / previous message"],
  ["o", "Open the message"],
  ["r", "Reply"],
  ["a", "Reply to all"],
  ["f", "Forward"],
  ["c", "Write a new message"],
  ["e", "Archive"],
  ["#", "Delete (to Trash)"],
  ["!", "Mark as spam"],
  ["s", "Flag or unflag"],
  ["Shift+I / Shift+U", "Mark as read / unread"],
  ["z", "Undo the last move or delete"],
  ["/", "Search"],
  ["?", "Show these shortcuts"],
];

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function button(text, className = BUTTON) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  return b;
}

// Typing in a field or an editor (the compose form's contenteditable) is never a shortcut.
function typing(target) {
  if (!target || !target.closest) return false;
  return Boolean(target.isContentEditable ||
    target.closest("input, textarea, select, [contenteditable]:not([contenteditable='false'])"));
}

class Actions {
  constructor(api) {
    this.api = api;
    this.client = api.client;
    this.list = api.list;
    this.reader = api.reader;
    this.folders = api.folders;
    this.undo = null;       // the last move, while its toast shows: () => Promise
    this.undoTimer = null;
    this.openMenu = null;
  }

  install() {
    this.toastRegion();
    this.helpDialog();
    this.confirmDialog();
    this.readerButtons();
    this.listButtons();
    this.dragAndDrop();
    this.api.events.addEventListener("selection", (e) => this.selectionBar(e.detail));
    this.api.events.addEventListener("open", (e) => this.opened(e.detail));
    const choose = this.folders.onChoose;
    this.folders.onChoose = (box) => { const shown = choose(box); this.folderShown(); return shown; };
    this.folderShown();
    document.addEventListener("keydown", (e) => this.key(e));
    document.addEventListener("click", (e) => {
      if (this.openMenu && !this.openMenu.contains(e.target)) this.closeMenu();
    });
  }

  // --- what an action applies to ---------------------------------------------------------

  // Several selected rows, else the open message, else the one selected or the cursor's row.
  targets() {
    const selected = [...this.list.selected];
    if (selected.length > 1) return selected;
    if (this.reader.wanted) return [this.reader.wanted];
    if (selected.length === 1) return selected;
    const id = this.list.ids[this.list.focus];
    return id ? [id] : [];
  }

  box(role) { return this.folders.byRole(role); }

  // id -> mailboxIds of each email, from what the page knows, else asked for.
  async mailboxesOf(ids) {
    const out = new Map();
    const missing = [];
    for (const id of ids) {
      const email = this.list.emails.get(id) ||
        (this.reader.email && this.reader.email.id === id ? this.reader.email : null);
      if (email && email.mailboxIds) out.set(id, { ...email.mailboxIds }); else missing.push(id);
    }
    if (missing.length) {
      const got = await this.client.call("Email/get", { ids: missing, properties: ["id", "mailboxIds"] });
      for (const email of got.list) out.set(email.id, { ...email.mailboxIds });
    }
    return out;
  }

  inRole(mailboxIds, role) {
    const box = this.box(role);
    return Boolean(box && mailboxIds && mailboxIds[box.id]);
  }

  get maxInSet() {
    const core = (this.client.session.capabilities || {})["urn:ietf:params:jmap:core"] || {};
    return Math.max(1, Math.min(500, core.maxObjectsInSet || 500));
  }

  // --- the actions ---------------------------------------------------------------------

  // Move ``ids`` into ``target`` (a Mailbox); the toast says so with ``told(count)`` (by
  // default "Moved 2 messages to Projects.") and offers to move them back.
  async move(ids, target, told = null) {
    if (!target) { this.toast("There is no such folder on this account."); return; }
    const from = await this.mailboxesOf(ids);
    const update = {};
    for (const id of ids) {
      const boxes = from.get(id);
      if (!boxes || (boxes[target.id] && Object.keys(boxes).length === 1)) continue;
      update[id] = { mailboxIds: { [target.id]: true } };
    }
    const wanted = Object.keys(update);
    if (!wanted.length) return;
    const done = await this.set(update);
    if (done.length) {
      // Undo is offered as soon as the move is done (the list catches up after).
      const text = told ? told(plural(done.length, "message"))
        : `Moved ${plural(done.length, "message")} to ${displayName(target)}.`;
      this.toast(text, async () => {
        const back = {};
        for (const id of done) back[id] = { mailboxIds: from.get(id) };
        const undone = await this.set(back);
        this.toast(`${plural(undone.length, "message")} moved back.`);
        await this.changedPlaces(undone);
      });
    }
    await this.changedPlaces(done);
  }

  // Email/set update in batches; the ids updated (failures are told in the toast).
  async set(update) {
    const ids = Object.keys(update);
    const done = [];
    const failed = [];
    for (let i = 0; i < ids.length; i += this.maxInSet) {
      const part = {};
      for (const id of ids.slice(i, i + this.maxInSet)) part[id] = update[id];
      const out = await this.client.call("Email/set", { update: part });
      done.push(...Object.keys(out.updated || {}));
      for (const [id, error] of Object.entries(out.notUpdated || {})) failed.push(error.description || error.type);
    }
    if (failed.length) this.toast(`${plural(failed.length, "message")} could not be changed: ${failed[0]}`);
    return done;
  }

  async destroy(ids) {
    let count = 0;
    for (let i = 0; i < ids.length; i += this.maxInSet) {
      const out = await this.client.call("Email/set", { destroy: ids.slice(i, i + this.maxInSet) });
      count += (out.destroyed || []).length;
    }
    return count;
  }

  // Messages left this folder (or are gone): the reading pane closes if it showed one, the
  // selection is cleared and the list's positions are asked again.
  async changedPlaces(ids) {
    if (this.reader.wanted && ids.includes(this.reader.wanted)) {
      this.reader.close();
      this.list.opened = null;
      if (document.getElementById("app").dataset.view === "reader") document.getElementById("back").click();
    }
    this.list.selected.clear();
    this.list.selectionChanged();
    this.api.events.dispatchEvent(new CustomEvent("changed", { detail: ids }));
    await this.list.refresh();
  }

  async remove(ids) {
    if (!ids.length) return;
    const trash = this.box("trash");
    const from = await this.mailboxesOf(ids);
    const forGood = ids.filter((id) => !trash || this.inRole(from.get(id), "trash"));
    const toTrash = ids.filter((id) => !forGood.includes(id));
    if (forGood.length) {
      const ok = await this.confirm(`Delete ${plural(forGood.length, "message")} for good?`,
        "They are removed from the server now; this cannot be undone.", "Delete for good");
      if (ok) {
        const count = await this.destroy(forGood);
        await this.changedPlaces(forGood);
        this.toast(`${plural(count, "message")} deleted for good.`);
      }
    }
    if (toTrash.length) await this.move(toTrash, trash);
  }

  archive(ids) { return ids.length && this.move(ids, this.box("archive"), (n) => `Archived ${n}.`); }

  async spam(ids, isSpam) {
    if (!ids.length) return;
    if (isSpam === undefined) {
      const from = await this.mailboxesOf(ids);
      isSpam = !ids.every((id) => this.inRole(from.get(id), "junk"));
    }
    return isSpam ? this.move(ids, this.box("junk"), (n) => `Marked ${n} as spam.`)
      : this.move(ids, this.box("inbox"), (n) => `Not spam: moved ${n} to the Inbox.`);
  }

  async keyword(ids, keyword, on) {
    if (!ids.length) return;
    const update = {};
    for (const id of ids) update[id] = { [`keywords/${keyword}`]: on ? true : null };
    const done = await this.set(update);
    const email = this.reader.email;
    if (email && done.includes(email.id)) {
      email.keywords = { ...(email.keywords || {}) };
      if (on) email.keywords[keyword] = true; else delete email.keywords[keyword];
      this.reader.showKeywords();
    }
    await this.list.update(done);
  }

  async emptyTrash() {
    const trash = this.box("trash");
    if (!trash) return;
    const ok = await this.confirm("Empty Trash?",
      `Every message in ${displayName(trash)} is deleted for good; this cannot be undone.`, "Empty Trash");
    if (!ok) return;
    let count = 0;
    // A query and the destroy of what it found, in one request per batch (a back-reference).
    for (;;) {
      const out = await this.client.batch([
        ["Email/query", { filter: { inMailbox: trash.id }, limit: this.maxInSet }, "q"],
        ["Email/set", { "#destroy": ref("q", "Email/query", "/ids") }, "d"],
      ]);
      const destroyed = (out.d.destroyed || []).length;
      count += destroyed;
      if (!out.q.ids.length || !destroyed) break;
    }
    if (this.reader.email && this.inRole(this.reader.email.mailboxIds, "trash")) this.reader.close();
    this.list.selected.clear();
    this.list.selectionChanged();
    await this.list.refresh();
    this.toast(`Trash emptied: ${plural(count, "message")} deleted for good.`);
  }

  // --- the toast (role=status) with Undo ------------------------------------------------

  toastRegion() {
    this.toastElement = document.createElement("div");
    this.toastElement.setAttribute("role", "status");
    this.toastElement.id = "action-toast";
    this.toastElement.className = "fixed bottom-4 left-1/2 z-30 flex -translate-x-1/2 items-center gap-3 " +
      "rounded-lg bg-slate-900 px-4 py-2 text-sm text-white shadow-lg empty:hidden dark:bg-slate-100 dark:text-slate-900";
    document.body.append(this.toastElement);
  }

  toast(text, undo = null) {
    clearTimeout(this.undoTimer);
    this.undo = undo;
    const span = document.createElement("span");
    span.textContent = text;
    const parts = [span];
    if (undo) {
      const b = button("Undo", "rounded-md px-2 py-0.5 font-semibold text-sky-300 hover:bg-slate-700 dark:text-sky-700 dark:hover:bg-slate-300");
      b.addEventListener("click", () => this.runUndo());
      parts.push(b);
    }
    this.toastElement.replaceChildren(...parts);
    this.undoTimer = setTimeout(() => { this.undo = null; this.toastElement.replaceChildren(); },
      undo ? UNDO_MS : UNDO_MS / 2);
  }

  runUndo() {
    const undo = this.undo;
    this.undo = null;
    clearTimeout(this.undoTimer);
    this.toastElement.replaceChildren();
    if (undo) return undo();
  }

  // --- dialogs ---------------------------------------------------------------------------

  dialog(labelId, role) {
    const dialog = document.createElement("dialog");
    if (role) dialog.setAttribute("role", role);
    dialog.setAttribute("aria-labelledby", labelId);
    dialog.className = "w-full max-w-md rounded-lg bg-white p-4 text-slate-900 shadow-xl " +
      "backdrop:bg-slate-900/50 dark:bg-slate-900 dark:text-slate-100";
    document.body.append(dialog);
    return dialog;
  }

  helpDialog() {
    const dialog = this.help = this.dialog("shortcuts-title");
    const title = document.createElement("h2");
    title.id = "shortcuts-title";
    title.className = "mb-3 text-base font-semibold";
    title.textContent = "Keyboard shortcuts";
    const table = document.createElement("dl");
    table.className = "grid grid-cols-[auto_1fr] gap-x-4 gap-y-1 text-sm";
    for (const [keys, what] of SHORTCUTS) {
      const dt = document.createElement("dt");
      const kbd = document.createElement("kbd");
      kbd.className = "rounded border border-slate-300 px-1.5 font-mono text-xs dark:border-slate-600";
      kbd.textContent = keys;
      dt.append(kbd);
      const dd = document.createElement("dd");
      dd.textContent = what;
      table.append(dt, dd);
    }
    const close = button("Close", BUTTON + " mt-3 border border-slate-300 dark:border-slate-700");
    close.addEventListener("click", () => dialog.close());
    dialog.append(title, table, close);
  }

  confirmDialog() {
    const dialog = this.confirmer = this.dialog("confirm-title", "alertdialog");
    dialog.setAttribute("aria-describedby", "confirm-text");
    dialog.innerHTML = '<h2 id="confirm-title" class="mb-2 text-base font-semibold"></h2>' +
      '<p id="confirm-text" class="mb-4 text-sm text-slate-600 dark:text-slate-300"></p>' +
      '<div class="flex justify-end gap-2"></div>';
  }

  // A question with a Cancel and a named OK button; Escape cancels. Resolves to a boolean.
  confirm(question, detail, okLabel) {
    const dialog = this.confirmer;
    dialog.querySelector("h2").textContent = question;
    dialog.querySelector("p").textContent = detail;
    const cancel = button("Cancel", BUTTON + " border border-slate-300 dark:border-slate-700");
    const ok = button(okLabel, "rounded-md bg-red-600 px-3 py-1 font-medium text-white hover:bg-red-700");
    dialog.querySelector("div").replaceChildren(cancel, ok);
    return new Promise((resolve) => {
      const done = (answer) => { dialog.removeEventListener("close", closed); if (dialog.open) dialog.close(); resolve(answer); };
      const closed = () => done(false);
      dialog.addEventListener("close", closed);
      cancel.addEventListener("click", () => done(false));
      ok.addEventListener("click", () => done(true));
      dialog.showModal();
      cancel.focus();
    });
  }

  // --- the move menu -------------------------------------------------------------------

  // A "Move to…" button with a menu of folders; ``ids()`` says what it moves at click time.
  moveMenu(ids, className = BUTTON) {
    const wrap = document.createElement("span");
    wrap.className = "relative inline-block";
    const trigger = button("Move to…", className);
    trigger.setAttribute("aria-haspopup", "menu");
    trigger.setAttribute("aria-expanded", "false");
    const menu = document.createElement("ul");
    menu.setAttribute("role", "menu");
    menu.setAttribute("aria-label", "Move to folder");
    menu.className = "absolute left-0 z-20 mt-1 hidden max-h-72 w-56 overflow-y-auto rounded-md border " +
      "border-slate-200 bg-white py-1 text-sm shadow-lg dark:border-slate-700 dark:bg-slate-900";
    trigger.addEventListener("click", (event) => {
      event.stopPropagation();
      if (this.openMenu === wrap) { this.closeMenu(); return; }
      this.closeMenu();
      const items = this.folders.ordered().map(([box, depth]) => {
        const li = document.createElement("li");
        li.setAttribute("role", "none");
        const item = button(displayName(box), "block w-full px-3 py-1 text-left hover:bg-slate-100 " +
          "focus:bg-slate-100 focus:outline-none dark:hover:bg-slate-800 dark:focus:bg-slate-800");
        item.setAttribute("role", "menuitem");
        item.tabIndex = -1;
        item.style.paddingLeft = `${0.75 + depth * 0.9}rem`;
        item.addEventListener("click", () => { this.closeMenu(); this.move(ids(), box); });
        li.append(item);
        return li;
      });
      menu.replaceChildren(...items);
      menu.classList.remove("hidden");
      trigger.setAttribute("aria-expanded", "true");
      this.openMenu = wrap;
      const first = menu.querySelector("[role=menuitem]");
      if (first) first.focus();
    });
    menu.addEventListener("keydown", (event) => {
      if (menuKey(menu, event)) return;
      if (event.key === "Escape" || event.key === "Tab") {
        event.preventDefault();
        this.closeMenu();
        trigger.focus();
      }
    });
    wrap.append(trigger, menu);
    wrap.closeMenu = () => { menu.classList.add("hidden"); trigger.setAttribute("aria-expanded", "false"); };
    return wrap;
  }

  closeMenu() {
    if (this.openMenu) this.openMenu.closeMenu();
    this.openMenu = null;
  }

  // --- buttons -----------------------------------------------------------------------------

  readerButtons() {
    const slot = this.api.slots.reader;
    // The message shown or being loaded (Reader.wanted, set as soon as it is asked for).
    const one = () => (this.reader.wanted ? [this.reader.wanted] : []);
    const archive = button("Archive");
    archive.addEventListener("click", () => this.archive(one()));
    const remove = button("Delete");
    remove.addEventListener("click", () => this.remove(one()));
    this.spamButton = button("Spam");
    this.spamButton.addEventListener("click", () => this.spam(one()));
    slot.append(archive, remove, this.moveMenu(one), this.spamButton);
  }

  // The open message's own place decides "Spam" or "Not spam".
  opened(id) {
    const email = this.list.emails.get(id);
    const junk = email && this.inRole(email.mailboxIds, "junk");
    this.spamButton.textContent = junk ? "Not spam" : "Spam";
  }

  listButtons() {
    this.emptyButton = button("Empty Trash", SMALL + " hidden");
    this.emptyButton.addEventListener("click", () => this.emptyTrash());
    this.api.slots.list.append(this.emptyButton);
  }

  folderShown() {
    const box = this.folders.currentBox;
    this.emptyButton.classList.toggle("hidden", !box || box.role !== "trash");
  }

  selectionBar(ids) {
    const bar = document.getElementById("selection-bar");
    if (this.openMenu && bar.contains(this.openMenu)) this.openMenu = null;
    if (ids.length < 2) { bar.classList.add("hidden"); bar.classList.remove("flex"); bar.replaceChildren(); return; }
    bar.classList.remove("hidden");
    bar.classList.add("flex", "flex-wrap");
    const label = document.createElement("span");
    label.textContent = `${ids.length} selected`;
    const selected = () => [...this.list.selected];
    const inJunk = ids.every((id) => this.inRole((this.list.emails.get(id) || {}).mailboxIds, "junk"));
    const actions = [
      ["Archive", () => this.archive(selected())],
      ["Delete", () => this.remove(selected())],
      [inJunk ? "Not spam" : "Spam", () => this.spam(selected(), !inJunk)],
      ["Mark as read", () => this.keyword(selected(), "$seen", true)],
      ["Mark as unread", () => this.keyword(selected(), "$seen", false)],
      ["Flag", () => this.keyword(selected(), "$flagged", true)],
      ["Unflag", () => this.keyword(selected(), "$flagged", false)],
    ];
    const buttons = actions.map(([text, run]) => {
      const b = button(text, SMALL);
      b.addEventListener("click", run);
      return b;
    });
    bar.replaceChildren(label, ...buttons.slice(0, 2), this.moveMenu(selected, SMALL), ...buttons.slice(2));
  }

  // --- drag and drop onto the folder tree -----------------------------------------------

  dragAndDrop() {
    const spacer = this.list.spacer;
    // Rows are made by list.js; they become draggable when a pointer goes down on them.
    spacer.addEventListener("pointerdown", (event) => {
      const row = event.target.closest("[role=option]");
      if (row && row.dataset.id) row.draggable = true;
    });
    spacer.addEventListener("dragstart", (event) => {
      const row = event.target.closest && event.target.closest("[role=option]");
      if (!row || !row.dataset.id) return;
      const id = row.dataset.id;
      const ids = this.list.selected.has(id) && this.list.selected.size > 1 ? [...this.list.selected] : [id];
      event.dataTransfer.setData(DRAG_TYPE, JSON.stringify(ids));
      event.dataTransfer.setData("text/plain", plural(ids.length, "message"));
      event.dataTransfer.effectAllowed = "move";
    });
    const tree = document.getElementById("folders");
    const target = (event) => {
      const b = event.target.closest && event.target.closest("button[data-id]");
      return b && event.dataTransfer && [...event.dataTransfer.types].includes(DRAG_TYPE) ? b : null;
    };
    const HIGHLIGHT = ["ring-2", "ring-sky-500"];
    const clear = () => tree.querySelectorAll(".ring-2").forEach((b) => b.classList.remove(...HIGHLIGHT));
    tree.addEventListener("dragover", (event) => {
      const b = target(event);
      if (!b) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "move";
      clear();
      b.classList.add(...HIGHLIGHT);
    });
    tree.addEventListener("dragleave", clear);
    tree.addEventListener("drop", (event) => {
      const b = target(event);
      clear();
      if (!b) return;
      event.preventDefault();
      let ids;
      try { ids = JSON.parse(event.dataTransfer.getData(DRAG_TYPE)); } catch { return; }
      const box = this.folders.boxes.get(b.dataset.id);
      if (box && Array.isArray(ids)) this.move(ids.filter((i) => typeof i === "string"), box);
    });
  }

  // --- keyboard ----------------------------------------------------------------------------

  key(event) {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
    if (typing(event.target) || document.querySelector("dialog[open]")) return;
    const run = {
      j: () => this.step(1), k: () => this.step(-1), o: () => this.openCursor(),
      r: () => this.compose("reply"), a: () => this.compose("replyAll"),
      f: () => this.compose("forward"), c: () => this.compose("new"),
      e: () => this.archive(this.targets()), "#": () => this.remove(this.targets()),
      "!": () => this.spam(this.targets(), true),
      s: () => this.toggleFlag(), I: () => this.keyword(this.targets(), "$seen", true),
      U: () => this.keyword(this.targets(), "$seen", false),
      z: () => this.runUndo(), "/": () => this.focusSearch(), "?": () => this.help.showModal(),
    }[event.key];
    if (!run) return;
    event.preventDefault();
    run();
  }

  // j/k outside the list (list.js moves its cursor when it has the focus): the next or
  // previous message opens when one is open, else the cursor moves.
  async step(delta) {
    const list = this.list;
    let at = list.opened ? list.ids.indexOf(list.opened) : -1;
    if (at < 0) at = list.focus;
    const next = Math.max(0, Math.min(list.total - 1, at + delta));
    list.focus = next;
    const top = next * ROW_HEIGHT;
    if (top < list.scroller.scrollTop) list.scroller.scrollTop = top;
    else if (top + ROW_HEIGHT > list.scroller.scrollTop + list.scroller.clientHeight) {
      list.scroller.scrollTop = top + ROW_HEIGHT - list.scroller.clientHeight;
    }
    await list.ensure(list.visibleRange());
    const id = list.ids[next];
    if (this.reader.wanted && id) {
      if (id !== list.opened) this.openId(id);
    } else {
      list.scroller.focus();
      list.redrawMarks();
    }
  }

  openCursor() {
    const id = this.list.ids[this.list.focus];
    if (id) this.openId(id);
  }

  openId(id) {
    this.list.selected = new Set([id]);
    this.list.open(id);
    this.list.selectionChanged();
  }

  toggleFlag() {
    const ids = this.targets();
    if (!ids.length) return;
    const email = this.list.emails.get(ids[0]) || this.reader.email;
    return this.keyword(ids, "$flagged", !(email && (email.keywords || {}).$flagged));
  }

  focusSearch() {
    const box = document.querySelector("[role=search] input");
    if (box) box.focus();
  }

  compose(mode) {
    const compose = this.api.compose;
    if (!compose) { this.toast("Writing mail is not available on this page."); return; }
    if (mode === "new") return compose.open({ mode });
    const [id] = this.targets();
    if (!id) return;
    return compose.open({ mode, emailId: id });
  }
}

export function install(api) {
  const actions = new Actions(api);
  actions.install();
  api.actions = actions;
}
