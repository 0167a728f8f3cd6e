// The webmail page: wires the JMAP client, the folder tree, the virtual message list and the
// reading pane, and keeps them live with push (catch-up through Email/changes after every
// state change and every reconnection).
//
// Other features (writing, actions, search) plug in as modules without changes here: the
// template lists them in <div id="app" data-modules="compose actions">; each is imported
// from this directory and its `install(api)` called once the page runs, with
//   api.client   the JMAP client (jmap.js)       api.events  the event bus (EventTarget)
//   api.folders  the folder tree (folders.js)    api.list    the message list (list.js)
//   api.reader   the reading pane (reader.js)    api.slots   {header, list, reader}: toolbars
// The bus carries "open" (email id), "selection" (ids) and "changed" (ids whose keywords or
// mailbox a module changed: the list re-reads them; push brings the rest). The selection bar
// (#selection-bar) and its bulk actions belong to the actions module.
import { Client, ref } from "./jmap.js";
import { Folders, displayName } from "./folders.js";
import { LIST_PROPERTIES, MessageList } from "./list.js";
import { Reader } from "./reader.js";
import * as theme from "./theme.js";

const $ = (id) => document.getElementById(id);

class App {
  constructor() {
    this.client = new Client();
    this.events = new EventTarget();
    this.emailState = null;
    this.catchingUp = null;
    this.again = false;
  }

  async start() {
    theme.setup();
    // The session and the first request at once when the page named the account and the
    // inbox: folders, the Email state and the inbox's first window in one round trip.
    const boot = $("app").dataset;
    const early = boot.accountId && boot.apiUrl && boot.inboxId;
    const calls = [[...Folders.call(), "m"], ["Email/get", { ids: [], properties: ["id"] }, "s"],
                   ...(early ? MessageList.firstWindow(boot.inboxId) : [])];
    const firstRequest = early ? this.client.batch(calls) : null;
    await this.client.connect();
    this.folders = new Folders(this.client, $("folders"), (box) => this.showFolder(box));
    this.list = new MessageList(this.client, $("list"), $("list-spacer"), this.events);
    this.reader = new Reader(this.client, this.events);
    this.events.addEventListener("open", (e) => this.open(e.detail));
    this.events.addEventListener("changed", (e) => this.list.update(e.detail));
    $("sort").addEventListener("change", () => this.list.show(this.folders.current, { sort: $("sort").value }));
    $("threads").addEventListener("change", () => this.list.show(this.folders.current, { threads: $("threads").checked }));
    $("back").addEventListener("click", () => this.setView("list"));
    $("full-view").addEventListener("click", () => this.toggleFull());
    $("folders-toggle").addEventListener("click", () => this.toggleFolders());
    // The Email state to catch up from, and the folders, in one request.
    const first = await (firstRequest || this.client.batch(calls));
    this.emailState = first.s.state;
    this.folders.apply(first.m);
    const box = this.folders.currentBox;
    this.showFolder(box, early && box && box.id === boot.inboxId ? first : null);
    this.stopPush = this.client.push((changed) => this.changed(changed), (s) => this.status(s));
    window.addEventListener("online", () => this.changed(null));
    await this.installModules();
    document.documentElement.dataset.ready = "1";
  }

  async installModules() {
    const api = { client: this.client, events: this.events, folders: this.folders,
                  list: this.list, reader: this.reader,
                  slots: { header: $("header-slot"), list: $("list-slot"), reader: $("reader-slot") } };
    for (const name of ($("app").dataset.modules || "").split(/\s+/).filter(Boolean)) {
      if (!/^[a-z][a-z0-9-]*$/.test(name)) continue;
      const module = await import(`./${name}.js`);
      if (module.install) await module.install(api);
    }
  }

  status(text) {
    $("status").textContent = text === "live" ? "" : "Reconnecting…";
  }

  showFolder(box, first = null) {
    if (!box) return;
    $("folder-title").textContent = displayName(box);
    this.reader.close();
    this.setView("list");
    $("folders-pane").classList.add("hidden");
    $("folders-toggle").setAttribute("aria-expanded", "false");
    return this.list.show(box.id, first ? { first } : {});
  }

  open(id) {
    this.list.opened = id;
    this.list.redrawMarks();
    this.setView("reader");
    return this.reader.open(id);
  }

  setView(view) {
    // Phone width shows one pane at a time; wider screens show both (md: classes).
    $("app").dataset.view = view;
    const reading = view === "reader";
    $("list-pane").classList.toggle("hidden", reading);
    $("list-pane").classList.toggle("md:flex", true);
    $("reader-pane").classList.toggle("hidden", !reading);
    $("reader-pane").classList.toggle("flex", reading);
    $("reader-pane").classList.toggle("md:flex", true);
  }

  toggleFull() {
    const full = $("full-view").getAttribute("aria-pressed") !== "true";
    $("full-view").setAttribute("aria-pressed", String(full));
    $("full-view").textContent = full ? "Reading pane" : "Full view";
    $("list-pane").classList.toggle("md:flex", !full);
    $("list-pane").classList.toggle("md:hidden", full);
    $("folders-pane").classList.toggle("md:block", !full);
  }

  toggleFolders() {
    const open = $("folders-pane").classList.contains("hidden");
    $("folders-pane").classList.toggle("hidden", !open);
    $("folders-toggle").setAttribute("aria-expanded", String(open));
  }

  // A push event (or a reconnection: changed === null). Catch up through /changes; several
  // events during one catch-up are folded into one more round.
  changed(changed) {
    if (this.catchingUp) { this.again = true; return; }
    this.catchingUp = this.catchUp().then(() => {
      this.status("live");
    }, () => {
      // Offline or the server restarting: try again shortly (the push stream may stay
      // open through a short outage, so no new event would come to retry for us).
      this.status("reconnecting");
      setTimeout(() => this.changed(null), 2000);
    }).finally(() => {
      this.catchingUp = null;
      if (this.again) { this.again = false; this.changed(null); }
    });
  }

  // One request per round: the folders (counts), what changed since our state, and the
  // list properties of the changed emails (a back-reference to Email/changes' /updated).
  async catchUp() {
    let created = false;
    const destroyed = new Set();
    for (;;) {
      let out;
      try {
        out = await this.client.batch([
          [...Folders.call(), "m"],
          ["Email/changes", { sinceState: this.emailState, maxChanges: 200 }, "c"],
          ["Email/get", { "#ids": ref("c", "Email/changes", "/updated"),
                          properties: LIST_PROPERTIES }, "g"],
        ]);
      } catch (error) {
        if (error.type !== "cannotCalculateChanges") throw error;
        // Too far behind: start from the current state with fresh windows.
        const [folders, state] = await Promise.all([
          this.client.call(...Folders.call()),
          this.client.call("Email/get", { ids: [], properties: ["id"] })]);
        this.folders.apply(folders);
        this.emailState = state.state;
        this.list.emails.clear();
        created = true;
        break;
      }
      this.folders.apply(out.m);
      const changes = out.c;
      this.emailState = changes.newState;
      if (changes.created.length || changes.destroyed.length) created = true;
      for (const id of changes.destroyed) destroyed.add(id);
      // An email moved into or out of the folder shown (a move keeps its id, so it is
      // "updated"): positions change, the window is asked again.
      const shown = this.list.mailboxId;
      for (const email of out.g.list) {
        const before = this.list.emails.get(email.id);
        const was = Boolean(before && before.mailboxIds && before.mailboxIds[shown]);
        if (was !== Boolean(email.mailboxIds && email.mailboxIds[shown])) created = true;
      }
      if (out.g.list.length || out.g.notFound.length) {
        // A move keeps the Email id (an update, not a destroy) but leaves the folder.
        if (out.g.list.some((e) => this.list.emails.has(e.id) && JSON.stringify(
          Object.keys(this.list.emails.get(e.id).mailboxIds || {}).sort()) !==
          JSON.stringify(Object.keys(e.mailboxIds || {}).sort()))) created = true;
        this.list.apply(out.g);
        this.reader.follow(out.g.list);
      }
      if (!changes.hasMoreChanges) break;
    }
    if (this.reader.email && destroyed.has(this.reader.email.id)) this.reader.close();
    // New or removed messages move positions: the visible window is asked again.
    if (created) await this.list.refresh();
  }
}

new App().start().catch((error) => {
  const status = document.getElementById("status");
  if (status) status.textContent = `The mail could not be loaded: ${error.message}`;
});
