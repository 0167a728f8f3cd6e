// Search (issue 13 item 5): a search box in the list toolbar (role=search) with an advanced panel
// (from, to, subject, body, received after/before, has attachment, this folder or all
// folders). The results are the message list itself, through MessageList.show's `filter`
// (a JMAP Email/query FilterCondition the server answers from its blind index, confirmed on
// the decrypted text: mail/query.py); clearing the search returns to the folder.
//
// The box takes a query syntax too: `from:alice subject:"team report" has:attachment
// after:2026-01-01 before:2026-02-01 in:all` plus free words (searched everywhere in the
// message: JMAP `text`). The box and the panel show the same criteria.
import { displayName } from "./folders.js";

const FIELD = "w-full rounded border border-slate-300 bg-white px-2 py-1 text-sm " +
  "dark:border-slate-700 dark:bg-slate-900";
const BUTTON = "rounded-md px-2 py-1 text-sm hover:bg-slate-100 dark:hover:bg-slate-800";
const TEXT_KEYS = ["from", "to", "subject", "body"];
const DATE = /^\d{4}-\d{2}-\d{2}$/;

// "from:alice subject:\"a b\" has:attachment words" -> criteria
// {from, to, subject, body, text, after, before, attachment, all}; unknown "x:y" are words.
export function parseQuery(query) {
  const criteria = { text: "" };
  const words = [];
  const pattern = /(?:(\w+):)?(?:"([^"]*)"|(\S+))/g;
  for (const match of query.matchAll(pattern)) {
    const key = (match[1] || "").toLowerCase();
    const value = match[2] !== undefined ? match[2] : match[3];
    if (TEXT_KEYS.includes(key)) {
      criteria[key] = criteria[key] ? `${criteria[key]} ${value}` : value;
    } else if ((key === "after" || key === "before") && DATE.test(value)) {
      criteria[key] = value;
    } else if (key === "has" && /^attachments?$/i.test(value)) {
      criteria.attachment = true;
    } else if (key === "in" && /^(all|anywhere)$/i.test(value)) {
      criteria.all = true;
    } else {
      words.push(match[0]);
    }
  }
  criteria.text = words.join(" ");
  return criteria;
}

// criteria -> the text of the box (the inverse of parseQuery).
export function formatQuery(criteria) {
  const quote = (v) => (/\s/.test(v) ? `"${v.replace(/"/g, "")}"` : v);
  const parts = [];
  for (const key of TEXT_KEYS) if (criteria[key]) parts.push(`${key}:${quote(criteria[key])}`);
  for (const key of ["after", "before"]) if (criteria[key]) parts.push(`${key}:${criteria[key]}`);
  if (criteria.attachment) parts.push("has:attachment");
  if (criteria.all) parts.push("in:all");
  if (criteria.text) parts.push(criteria.text);
  return parts.join(" ");
}

// criteria -> a JMAP FilterCondition (RFC 8621 §4.4.1); null when it asks for nothing.
// Dates are whole UTC days: "after" is on or after that day, "before" is before it (IMAP
// SINCE/BEFORE, RFC 3501 §6.4.4).
export function toFilter(criteria, mailboxId) {
  const filter = {};
  for (const key of TEXT_KEYS) if (criteria[key] && criteria[key].trim()) filter[key] = criteria[key].trim();
  if (criteria.text && criteria.text.trim()) filter.text = criteria.text.trim();
  if (criteria.after) filter.after = `${criteria.after}T00:00:00Z`;
  if (criteria.before) filter.before = `${criteria.before}T00:00:00Z`;
  if (criteria.attachment) filter.hasAttachment = true;
  if (!Object.keys(filter).length) return null;
  if (!criteria.all && mailboxId) filter.inMailbox = mailboxId;
  return filter;
}

class Search {
  constructor(api) {
    this.api = api;
    this.list = api.list;
    this.folders = api.folders;
    this.active = null;   // the criteria shown, or null (the folder is shown)
  }

  install() {
    const form = this.form = document.createElement("form");
    form.setAttribute("role", "search");
    form.setAttribute("aria-label", "Search mail");
    form.className = "relative flex basis-full items-center gap-1";
    form.innerHTML = `
      <input type="search" id="search-box" aria-label="Search mail" autocomplete="off"
        placeholder="Search (from:alice has:attachment)"
        class="min-w-0 flex-1 rounded-md border border-slate-300 bg-white px-2 py-1 text-sm dark:border-slate-700 dark:bg-slate-900">
      <button type="submit" class="${BUTTON}">Search</button>
      <button type="button" id="search-advanced-toggle" class="${BUTTON}" aria-expanded="false"
        aria-controls="search-advanced">Advanced</button>
      <button type="button" id="search-clear" class="${BUTTON} hidden">Clear search</button>
      <div id="search-advanced" role="group" aria-label="Advanced search"
        class="absolute left-0 top-full z-20 mt-1 hidden w-80 max-w-full space-y-2 rounded-lg border border-slate-200 bg-white p-3 text-sm shadow-lg dark:border-slate-700 dark:bg-slate-900">
        ${TEXT_KEYS.map((key) => `
        <label class="block">${{ from: "From", to: "To", subject: "Subject", body: "Body" }[key]}
          <input type="text" name="${key}" class="${FIELD}"></label>`).join("")}
        <div class="flex gap-2">
          <label class="block flex-1">Received after <input type="date" name="after" class="${FIELD}"></label>
          <label class="block flex-1">Received before <input type="date" name="before" class="${FIELD}"></label>
        </div>
        <label class="flex items-center gap-2"><input type="checkbox" name="attachment" class="accent-sky-600"> Has attachment</label>
        <fieldset class="flex gap-3"><legend class="sr-only">Where</legend>
          <label class="flex items-center gap-1"><input type="radio" name="scope" value="folder" checked class="accent-sky-600"> This folder</label>
          <label class="flex items-center gap-1"><input type="radio" name="scope" value="all" class="accent-sky-600"> All folders</label>
        </fieldset>
        <div class="flex justify-end gap-2">
          <button type="button" id="search-reset" class="${BUTTON}">Reset</button>
          <button type="submit" class="rounded-md bg-sky-600 px-3 py-1 font-medium text-white hover:bg-sky-700">Find messages</button>
        </div>
      </div>
      <span id="search-count" class="sr-only" aria-live="polite"></span>`;
    // Its own row of the list toolbar (which wraps), so it fits a phone's width too.
    this.api.slots.list.parentElement.append(form);
    this.box = form.querySelector("#search-box");
    this.panel = form.querySelector("#search-advanced");
    this.toggle = form.querySelector("#search-advanced-toggle");
    this.clearButton = form.querySelector("#search-clear");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const fromPanel = !this.panel.classList.contains("hidden");
      const criteria = fromPanel ? this.fromPanel() : parseQuery(this.box.value);
      this.showPanel(false);
      this.run(criteria);
    });
    this.toggle.addEventListener("click", () => {
      const open = this.panel.classList.contains("hidden");
      if (open) this.toPanel(parseQuery(this.box.value));
      this.showPanel(open);
      if (open) this.panel.querySelector("input").focus();
    });
    form.querySelector("#search-reset").addEventListener("click", () => this.toPanel({}));
    this.clearButton.addEventListener("click", () => this.clear());
    form.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      event.preventDefault();
      if (!this.panel.classList.contains("hidden")) { this.showPanel(false); this.toggle.focus(); }
      else this.clear();
    });
    // Choosing a folder leaves the search; sorting or conversations keep it.
    const choose = this.folders.onChoose;
    this.folders.onChoose = (box) => { this.forget(); return choose(box); };
    for (const id of ["sort", "threads"]) {
      document.getElementById(id).addEventListener("change", () => { if (this.active) this.show(); });
    }
  }

  showPanel(open) {
    this.panel.classList.toggle("hidden", !open);
    this.toggle.setAttribute("aria-expanded", String(open));
  }

  fromPanel() {
    const field = (name) => this.panel.querySelector(`[name=${name}]`);
    const criteria = { text: parseQuery(this.box.value).text };
    for (const key of [...TEXT_KEYS, "after", "before"]) criteria[key] = field(key).value.trim();
    criteria.attachment = field("attachment").checked;
    criteria.all = this.panel.querySelector("[name=scope][value=all]").checked;
    return criteria;
  }

  toPanel(criteria) {
    const field = (name) => this.panel.querySelector(`[name=${name}]`);
    for (const key of [...TEXT_KEYS, "after", "before"]) field(key).value = criteria[key] || "";
    field("attachment").checked = Boolean(criteria.attachment);
    this.panel.querySelector(`[name=scope][value=${criteria.all ? "all" : "folder"}]`).checked = true;
  }

  run(criteria) {
    this.box.value = formatQuery(criteria);
    this.toPanel(criteria);
    if (!toFilter(criteria, null)) { this.clear(); return; }
    this.active = criteria;
    return this.show();
  }

  async show() {
    const folder = this.folders.currentBox;
    const filter = toFilter(this.active, folder ? folder.id : null);
    document.getElementById("folder-title").textContent =
      this.active.all || !folder ? "Search: all folders" : `Search: ${displayName(folder)}`;
    this.clearButton.classList.remove("hidden");
    this.api.reader.close();
    await this.list.show(folder ? folder.id : null, {
      sort: document.getElementById("sort").value, threads: document.getElementById("threads").checked, filter });
    const count = this.list.total;
    this.form.querySelector("#search-count").textContent =
      `${count} message${count === 1 ? "" : "s"} found`;
  }

  // Leave the search without touching the list (a folder is about to be shown).
  forget() {
    this.active = null;
    this.box.value = "";
    this.toPanel({});
    this.showPanel(false);
    this.clearButton.classList.add("hidden");
    this.form.querySelector("#search-count").textContent = "";
  }

  clear() {
    const was = this.active;
    this.forget();
    const folder = this.folders.currentBox;
    if (was && folder) {
      document.getElementById("folder-title").textContent = displayName(folder);
      this.list.show(folder.id);
    }
  }
}

export function install(api) {
  const search = new Search(api);
  search.install();
  api.search = search;
}
