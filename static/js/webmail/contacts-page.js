// The contacts page (/mail/contacts, templates/mail/contacts.html): the list of every address
// book's contacts (the default book first), search, a form to create and edit, delete with a
// confirmation, a photo, import and export of .vcf.  It talks to the JSON endpoints of
// mailgosend/web/webmail_contacts.py: the CardDAV data, so DAV clients see the same contacts.
//
// Not one of the mail page's feature modules (it has no install()): a page of its own, so it
// loads without the JMAP connection and push of /mail.  The email fields carry
// data-addresses="single", so autocomplete.js suggests addresses used before there too.
import * as autocomplete from "./autocomplete.js";
import * as theme from "./theme.js";

const $ = (id) => document.getElementById(id);
const csrf = () => document.querySelector("meta[name=csrf-token]").content;
const EMAIL_TYPES = [["home", "Home"], ["work", "Work"], ["other", "Other"]];
const PHONE_TYPES = [["cell", "Mobile"], ["home", "Home"], ["work", "Work"], ["fax", "Fax"],
                     ["other", "Other"]];
const ADDRESS = ["street", "city", "region", "code", "country"];

export function fold(text) {
  return (text || "").normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
}

class ApiError extends Error {
  constructor(status, body) {
    super(body.error || `HTTP ${status}`);
    this.status = status;
    this.field = body.field || "";
  }
}

async function call(method, path, body, type = "application/json") {
  const init = { method, headers: {}, credentials: "same-origin" };
  if (method !== "GET") init.headers["X-CSRF-Token"] = csrf();
  if (body !== undefined) {
    init.headers["Content-Type"] = type;
    init.body = type === "application/json" ? JSON.stringify(body) : body;
  }
  const response = await fetch(path, init);
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, answer);
  return answer;
}

function initials(name) {
  const words = (name || "?").trim().split(/\s+/).filter(Boolean);
  return ((words[0] || "?")[0] + (words.length > 1 ? words[words.length - 1][0] : "")).toUpperCase();
}

function avatar(element, contact) {
  element.replaceChildren();
  if (contact && contact.photo) {
    const img = document.createElement("img");
    img.src = `/mail/api/contacts/${contact.id}/photo?v=${encodeURIComponent(contact.etag)}`;
    img.alt = "";
    img.className = "h-full w-full object-cover";
    element.append(img);
  } else {
    element.textContent = initials(contact ? contact.name : "");
  }
}

// Downscale a photo in the browser (a vCard carries it inline: keep cards small); an image
// the browser cannot decode goes as it is, and the server says what is wrong with it.
async function shrink(file) {
  try {
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(1, 256 / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.max(1, Math.round(bitmap.width * scale));
    canvas.height = Math.max(1, Math.round(bitmap.height * scale));
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
    return blob || file;
  } catch {
    return file;
  }
}

class ContactsPage {
  constructor() {
    this.contacts = [];
    this.current = null;   // the contact being edited; null: a new one
  }

  async start() {
    theme.setup();
    autocomplete.install({});
    $("search").addEventListener("input", () => this.render());
    $("new-contact").addEventListener("click", () => this.edit(null));
    $("add-email").addEventListener("click", () => this.row("emails", { value: "", type: "home" }, true));
    $("add-phone").addEventListener("click", () => this.row("phones", { value: "", type: "cell" }, true));
    $("contact-form").addEventListener("submit", (e) => { e.preventDefault(); this.save(); });
    $("cancel").addEventListener("click", () => this.close());
    $("delete").addEventListener("click", () => this.askDelete());
    $("confirm-cancel").addEventListener("click", () => $("confirm-delete").close());
    $("confirm-ok").addEventListener("click", () => this.remove());
    $("f-photo").addEventListener("change", () => this.uploadPhoto());
    $("remove-photo").addEventListener("click", () => this.removePhoto());
    $("import-file").addEventListener("change", () => this.importFile());
    await this.load();
    document.documentElement.dataset.ready = "1";
  }

  status(text) { $("status").textContent = text; }

  async load() {
    const answer = await call("GET", "/mail/api/contacts");
    this.books = answer.books;
    this.contacts = answer.contacts;
    this.render();
  }

  visible() {
    const wanted = fold($("search").value.trim());
    if (!wanted) return this.contacts;
    return this.contacts.filter((c) => fold([c.name, c.org, ...c.emails.map((e) => e.value)]
      .join(" ")).includes(wanted));
  }

  render() {
    const shown = this.visible();
    const names = new Map((this.books || []).map((b) => [b.name, b.displayName]));
    let book = null;
    const items = [];
    for (const contact of shown) {
      if (names.size > 1 && contact.book !== book) {
        // Several address books: each one's contacts under its name, the default first.
        book = contact.book;
        const title = document.createElement("li");
        title.className = "bg-slate-50 px-2 py-1 text-xs font-semibold text-slate-600 dark:bg-slate-900 dark:text-slate-300";
        title.textContent = names.get(book) || book;
        items.push(title);
      }
      items.push(this.item(contact));
    }
    $("contacts").replaceChildren(...items);
    const total = this.contacts.length;
    $("count").textContent = shown.length === total ? `${total} contacts`
      : `${shown.length} of ${total} contacts`;
  }

  item(contact) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "flex w-full items-center gap-2 px-2 py-1.5 text-left text-sm hover:bg-slate-100 dark:hover:bg-slate-900";
    if (this.current && this.current.id === contact.id) button.setAttribute("aria-current", "true");
    const face = document.createElement("span");
    face.className = "flex h-8 w-8 shrink-0 items-center justify-center overflow-hidden rounded-full bg-slate-200 text-xs font-semibold text-slate-600 dark:bg-slate-800 dark:text-slate-300";
    face.setAttribute("aria-hidden", "true");
    avatar(face, contact);
    const text = document.createElement("span");
    text.className = "min-w-0";
    const name = document.createElement("span");
    name.className = "block truncate font-medium";
    name.textContent = contact.name;
    const line = document.createElement("span");
    line.className = "block truncate text-xs text-slate-500 dark:text-slate-400";
    line.textContent = contact.emails.length ? contact.emails[0].value : contact.org;
    text.append(name, line);
    button.append(face, text);
    button.addEventListener("click", () => this.edit(contact));
    li.append(button);
    return li;
  }

  row(list, entry, focus = false) {
    const kinds = list === "emails" ? EMAIL_TYPES : PHONE_TYPES;
    const noun = list === "emails" ? "Email" : "Phone";
    const container = $(list);
    const n = container.children.length + 1;
    const div = document.createElement("div");
    div.className = "flex items-center gap-1";
    const input = document.createElement("input");
    input.type = list === "emails" ? "email" : "tel";
    input.value = entry.value;
    input.setAttribute("aria-label", `${noun} ${n}`);
    input.className = "min-w-0 flex-1 rounded border border-slate-300 bg-white px-2 py-1 dark:border-slate-700 dark:bg-slate-900";
    if (list === "emails") { input.dataset.addresses = "single"; autocomplete.prepare(input); }
    const select = document.createElement("select");
    select.setAttribute("aria-label", `${noun} ${n} type`);
    select.className = "rounded border border-slate-300 bg-white px-1 py-1 dark:border-slate-700 dark:bg-slate-900";
    for (const [value, label] of kinds) select.add(new Option(label, value, false, value === entry.type));
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", `Remove ${noun.toLowerCase()} ${n}`);
    remove.className = "rounded-md px-2 py-1 hover:bg-slate-100 dark:hover:bg-slate-800";
    remove.addEventListener("click", () => div.remove());
    div.append(input, select, remove);
    container.append(div);
    if (focus) input.focus();
  }

  showDetail(show) {
    // Phones: the list or the form, one at a time; wider screens show both.
    $("detail-pane").classList.toggle("hidden", !show);
    $("list-pane").classList.toggle("hidden", show);
    $("list-pane").classList.toggle("md:flex", show);
  }

  edit(contact) {
    this.current = contact;
    const c = contact || { name: "", emails: [], phones: [], org: "", address: {}, note: "", birthday: "" };
    $("detail-empty").classList.add("hidden");
    $("contact-form").classList.remove("hidden");
    this.clearError();
    $("form-title").textContent = contact ? contact.name : "New contact";
    $("f-name").value = c.name;
    $("f-org").value = c.org;
    for (const key of ADDRESS) $(`f-${key}`).value = (c.address || {})[key] || "";
    $("f-birthday").value = /^\d{4}-\d{2}-\d{2}$/.test(c.birthday) ? c.birthday : "";
    $("f-note").value = c.note;
    $("emails").replaceChildren();
    $("phones").replaceChildren();
    for (const e of c.emails.length ? c.emails : [{ value: "", type: "home" }]) this.row("emails", e);
    for (const p of c.phones) this.row("phones", p);
    avatar($("avatar"), contact);
    $("delete").classList.toggle("hidden", !contact);
    $("export-one").classList.toggle("hidden", !contact);
    if (contact) $("export-one").href = `/mail/api/contacts/${contact.id}/vcf`;
    $("photo-row").classList.toggle("hidden", !contact);
    const books = this.books || [];
    $("book-row").classList.toggle("hidden", Boolean(contact) || books.length < 2);
    $("f-book").replaceChildren(...books.map((b) => new Option(b.displayName, b.name)));
    $("remove-photo").classList.toggle("hidden", !(contact && contact.photo));
    this.showDetail(true);
    this.render();
    $("f-name").focus();
  }

  close() {
    this.current = null;
    $("contact-form").classList.add("hidden");
    $("detail-empty").classList.remove("hidden");
    this.showDetail(false);
    this.render();
  }

  entries(list) {
    return [...$(list).children].map((div) => ({
      value: div.querySelector("input").value.trim(), type: div.querySelector("select").value,
    }));
  }

  fields() {
    const address = {};
    for (const key of ADDRESS) address[key] = $(`f-${key}`).value;
    return { name: $("f-name").value, emails: this.entries("emails"), phones: this.entries("phones"),
             org: $("f-org").value, address, birthday: $("f-birthday").value, note: $("f-note").value };
  }

  clearError() {
    $("form-error").classList.add("hidden");
    for (const el of $("contact-form").querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  }

  fieldElement(field) {
    const parts = field.split("/");
    if ((parts[0] === "emails" || parts[0] === "phones") && parts.length > 1) {
      const row = $(parts[0]).children[Number(parts[1])];
      return row && row.querySelector(parts[2] === "type" ? "select" : "input");
    }
    if (parts[0] === "address") return $(`f-${parts[1]}`);
    return $(`f-${parts[0]}`);
  }

  showError(error) {
    $("form-error").textContent = error.message;
    $("form-error").classList.remove("hidden");
    const element = error.field ? this.fieldElement(error.field) : null;
    if (element) { element.setAttribute("aria-invalid", "true"); element.focus(); }
  }

  // Empty rows go too (the server skips them), so an error's index is the row's on screen.
  async save() {
    this.clearError();
    const fields = this.fields();
    try {
      let saved;
      if (this.current) {
        saved = await call("PUT", `/mail/api/contacts/${this.current.id}`, { ...fields, etag: this.current.etag });
      } else {
        const book = $("f-book").value;
        saved = await call("POST", `/mail/api/contacts${book ? `?book=${encodeURIComponent(book)}` : ""}`, fields);
      }
      await this.load();
      this.status(`Saved ${saved.name}.`);
      this.edit(this.contacts.find((c) => c.id === saved.id) || saved);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      this.showError(error);
    }
  }

  askDelete() {
    $("confirm-text").textContent = this.current ? this.current.name : "";
    $("confirm-delete").showModal();
  }

  async remove() {
    $("confirm-delete").close();
    const contact = this.current;
    if (!contact) return;
    try {
      await call("DELETE", `/mail/api/contacts/${contact.id}?etag=${encodeURIComponent(contact.etag)}`);
      this.status(`Deleted ${contact.name}.`);
      this.close();
      await this.load();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      this.showError(error);
    }
  }

  async uploadPhoto() {
    const file = $("f-photo").files[0];
    $("f-photo").value = "";
    if (!file || !this.current) return;
    try {
      const body = await shrink(file);
      const saved = await call("PUT", `/mail/api/contacts/${this.current.id}/photo`, body, body.type || "application/octet-stream");
      await this.afterPhoto(saved);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      this.showError(error);
    }
  }

  async removePhoto() {
    if (!this.current) return;
    try {
      await this.afterPhoto(await call("DELETE", `/mail/api/contacts/${this.current.id}/photo`));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      this.showError(error);
    }
  }

  async afterPhoto(saved) {
    await this.load();
    this.current = this.contacts.find((c) => c.id === saved.id) || saved;
    avatar($("avatar"), this.current);
    $("remove-photo").classList.toggle("hidden", !this.current.photo);
    this.status(this.current.photo ? "Photo saved." : "Photo removed.");
  }

  async importFile() {
    const file = $("import-file").files[0];
    $("import-file").value = "";
    if (!file) return;
    try {
      const answer = await call("POST", "/mail/api/contacts/import", await file.text(), "text/vcard");
      await this.load();
      this.status(`Imported ${answer.added} new and ${answer.updated} updated contacts.`);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      this.status(`Import failed: ${error.message}`);
    }
  }
}

new ContactsPage().start();
