// Canned responses (feature module, see app.js): templates are messages in the "Templates"
// folder (the one Thunderbird uses, so IMAP clients see and edit them too). Each compose
// form (the "compose" event of the compose contract) gets, in its toolbar, a "Templates"
// menu that inserts one (its subject when the form has none, its body at the cursor) and
// "Save as template", which stores the form's subject and body there by JMAP Email/set.
import { menuKey } from "./menu.js";

export const FOLDER = "Templates";
const BUTTON = "rounded-md px-2 py-1 text-sm hover:bg-slate-100 dark:hover:bg-slate-800";
const ITEM = "block w-full truncate rounded px-2 py-1 text-left text-sm hover:bg-slate-100 " +
  "focus:bg-slate-100 dark:hover:bg-slate-800 dark:focus:bg-slate-800";
const LIMIT = 50;

function make(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text) element.textContent = text;
  return element;
}

function escapeHTML(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;" })[c]);
}

// The body of an HTML document (what Email/set stored), or the fragment as it is.
function bodyOf(html) {
  const match = /<body[^>]*>([\s\S]*)<\/body>/i.exec(html || "");
  return match ? match[1] : (html || "");
}

class Templates {
  constructor(api) {
    this.api = api;
  }

  folder() {
    for (const box of this.api.folders.boxes.values()) {
      if (box.name === FOLDER && !box.parentId) return box;
    }
    return null;
  }

  async ensureFolder() {
    const found = this.folder();
    if (found) return found.id;
    const out = await this.api.client.call("Mailbox/set", { create: { t: { name: FOLDER, parentId: null } } });
    if (out.created && out.created.t) return out.created.t.id;
    // Made meanwhile (another tab): look again.
    await this.api.folders.load();
    const again = this.folder();
    if (!again) throw new Error((out.notCreated && out.notCreated.t && out.notCreated.t.description) || "the Templates folder could not be made");
    return again.id;
  }

  // [{id, subject, html, text}] of the folder, newest first.
  async list() {
    const box = this.folder();
    if (!box) return [];
    const out = await this.api.client.batch([
      ["Email/query", { filter: { inMailbox: box.id }, sort: [{ property: "receivedAt", isAscending: false }], limit: LIMIT }, "q"],
      ["Email/get", { "#ids": { resultOf: "q", name: "Email/query", path: "/ids" },
                      properties: ["id", "subject", "htmlBody", "textBody", "bodyValues"],
                      fetchHTMLBodyValues: true, fetchTextBodyValues: true }, "g"],
    ]);
    const byId = new Map(out.g.list.map((e) => [e.id, e]));
    return out.q.ids.map((id) => byId.get(id)).filter(Boolean).map((email) => {
      const value = (parts) => (parts || []).map((p) => (email.bodyValues[p.partId] || {}).value || "").join("");
      const htmlParts = (email.htmlBody || []).filter((p) => p.type === "text/html");
      return { id: email.id, subject: email.subject || "",
               html: htmlParts.length ? bodyOf(value(htmlParts)) : null,
               text: value((email.textBody || []).filter((p) => p.type === "text/plain")) };
    });
  }

  async identity() {
    if (!this.from) {
      const got = await this.api.client.call("Identity/get", { ids: null });
      const first = got.list[0];
      this.from = first ? [{ name: first.name || null, email: first.email }] : null;
    }
    return this.from;
  }

  async save(draft) {
    const subject = draft.fields.subject.value.replace(/[\r\n]+/g, " ").trim();
    if (!subject) throw new Error("Subject: a template needs a subject (its name in the menu)");
    const html = draft.editor.getHTML();
    const mailbox = await this.ensureFolder();
    const from = await this.identity();
    const email = {
      mailboxIds: { [mailbox]: true },
      keywords: { $seen: true },
      subject,
      bodyValues: { html: { value: `<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>${html}</body></html>` } },
      htmlBody: [{ partId: "html", type: "text/html" }],
    };
    if (from) email.from = from;
    const out = await this.api.client.call("Email/set", { create: { t: email } });
    if (!out.created || !out.created.t) {
      const why = out.notCreated && out.notCreated.t;
      throw new Error(why ? (why.description || why.type) : "not saved");
    }
    return out.created.t.id;
  }

  insert(draft, template) {
    if (!draft.fields.subject.value.trim() && template.subject) {
      draft.fields.subject.value = template.subject;
    }
    const html = template.html !== null ? template.html
      : template.text.split("\n").map((l) => `<div>${l ? escapeHTML(l) : "<br>"}</div>`).join("");
    draft.editor.insertHTML(html);   // compose sanitises (DOMPurify) and handles plain mode
    draft.changed();
  }

  attach(draft) {
    const wrap = make("div", "relative inline-block");
    const button = make("button", BUTTON, "Templates");
    button.type = "button";
    button.setAttribute("aria-haspopup", "menu");
    button.setAttribute("aria-expanded", "false");
    const menu = make("div", "absolute left-0 z-30 mt-1 hidden max-h-72 w-72 overflow-auto " +
      "rounded-md border border-slate-200 bg-white p-1 shadow-lg dark:border-slate-700 dark:bg-slate-900");
    menu.setAttribute("role", "menu");
    menu.setAttribute("aria-label", "Templates");
    const save = make("button", BUTTON, "Save as template");
    save.type = "button";
    const status = make("span", "text-sm text-slate-600 dark:text-slate-300");
    status.setAttribute("role", "status");
    const say = (text) => { status.textContent = text; };

    const close = () => { menu.classList.add("hidden"); button.setAttribute("aria-expanded", "false"); };
    const open = async () => {
      menu.replaceChildren(make("div", "px-2 py-1 text-sm text-slate-500", "Loading…"));
      menu.classList.remove("hidden");
      button.setAttribute("aria-expanded", "true");
      let found;
      try {
        found = await this.list();
      } catch (error) {
        menu.replaceChildren(make("div", "px-2 py-1 text-sm text-red-700", `Could not load the templates: ${error.message}`));
        return;
      }
      if (!found.length) {
        menu.replaceChildren(make("div", "px-2 py-1 text-sm text-slate-500",
          "No templates yet: write one, then “Save as template”."));
        return;
      }
      const items = found.map((template) => {
        const item = make("button", ITEM, template.subject || "(no subject)");
        item.type = "button";
        item.setAttribute("role", "menuitem");
        item.addEventListener("click", () => { close(); this.insert(draft, template); say(""); });
        return item;
      });
      menu.replaceChildren(...items);
      items[0].focus();
    };
    button.addEventListener("click", () => (menu.classList.contains("hidden") ? open() : close()));
    wrap.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !menu.classList.contains("hidden")) {
        event.stopPropagation();
        close();
        button.focus();
      }
      menuKey(menu, event);
    });
    draft.root.addEventListener("click", (event) => { if (!wrap.contains(event.target)) close(); });
    save.addEventListener("click", async () => {
      save.disabled = true;
      try {
        await this.save(draft);
        say("Saved as template");
      } catch (error) {
        say(`Could not save the template: ${error.message}`);
      } finally {
        save.disabled = false;
      }
    });
    wrap.append(button, menu);
    draft.slots.toolbar.append(wrap, save, status);
  }
}

export function install(api) {
  const templates = new Templates(api);
  api.events.addEventListener("compose", (event) => templates.attach(event.detail));
}
