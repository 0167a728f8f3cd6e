// Writing mail (issue 13 item 3): a compose dialog with To/Cc/Bcc/Subject and a From among
// the user's JMAP Identities, Squire as the rich editor (DOMPurify as its sanitiser) or a
// plain-text mode, attachments uploaded to the session's uploadUrl with a progress bar,
// drafts saved by Email/set into the Drafts mailbox (each version replacing the last, so
// IMAP clients see one draft), replies, forwards (inline or as a message/rfc822 part),
// signatures per identity, send later (HOLDUNTIL) and undo send (EmailSubmission held for
// SUBMISSION_UNDO_SECONDS, canceled by undoStatus "canceled").
//
// The contract other modules rely on (COMMON.md "compose contract"):
//   api.compose.open({mode, emailId, to, cc, bcc, subject, html, text}) -> Promise<draft>
//   api.events "compose" CustomEvent, detail = draft = {root, slots: {toolbar},
//     editor: {getHTML(), setHTML(html), insertHTML(html), plain}, fields: {to, cc, bcc,
//     subject}, changed()}
import Squire from "../../vendor/squire/squire.mjs";
import DOMPurify from "../../vendor/dompurify/purify.es.mjs";
import { JMAPError } from "./jmap.js";

const SUBMISSION = "urn:ietf:params:jmap:submission";
const AUTOSAVE_MS = 1500;
const BUTTON = "rounded-md px-2 py-1 text-sm hover:bg-slate-100 dark:hover:bg-slate-800";
const PRIMARY = "rounded-md bg-sky-600 px-3 py-1 text-sm font-medium text-white hover:bg-sky-700";
const INPUT = "min-w-0 flex-1 rounded border border-slate-300 bg-white px-2 py-1 text-sm dark:border-slate-700 dark:bg-slate-900";
const ORIGINAL_PROPERTIES = ["id", "blobId", "threadId", "mailboxIds", "keywords", "messageId",
  "inReplyTo", "references", "from", "to", "cc", "bcc", "replyTo", "subject", "sentAt",
  "receivedAt", "textBody", "htmlBody", "attachments", "bodyValues"];

// What the editor and quoted originals may hold: no style (the page's CSP refuses style
// attributes), no images or media (img-src 'self': a remote image would be a tracker and
// a CSP report), no forms or frames.
const PURIFY = {
  FORBID_TAGS: ["style", "img", "picture", "source", "video", "audio", "iframe", "form",
                "input", "button", "select", "textarea", "link", "meta", "svg", "math"],
  FORBID_ATTR: ["style", "srcset", "background", "class", "id"],
  ALLOW_DATA_ATTR: true,
};

export function sanitize(html) {
  return DOMPurify.sanitize(html || "", PURIFY);
}

function sanitizeToDOMFragment(html) {
  const fragment = DOMPurify.sanitize(html || "", { ...PURIFY, RETURN_DOM_FRAGMENT: true });
  return fragment ? document.importNode(fragment, true) : document.createDocumentFragment();
}

export function escapeHTML(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;" })[c]);
}

export function textToHTML(text) {
  return String(text || "").split("\n").map((line) => `<div>${line ? escapeHTML(line) : "<br>"}</div>`).join("");
}

// The plain-text alternative of the editor's HTML: blocks on their own lines, quotes with
// "> ", list items with "- " or "1. ", links with their address when it differs.
export function htmlToText(html) {
  const root = new DOMParser().parseFromString(`<body>${html || ""}</body>`, "text/html").body;
  const BLOCKS = new Set(["DIV", "P", "H1", "H2", "H3", "H4", "H5", "H6", "UL", "OL", "LI",
    "BLOCKQUOTE", "PRE", "TABLE", "TR", "HR", "DL", "DT", "DD"]);
  const lines = [""];
  const push = (text) => { lines[lines.length - 1] += text; };
  const newline = () => { if (lines[lines.length - 1] !== "") lines.push(""); };
  const walk = (node, prefix) => {
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        push(child.data.replace(/\s+/g, " "));
        continue;
      }
      if (child.nodeType !== Node.ELEMENT_NODE) continue;
      const tag = child.tagName;
      if (tag === "BR") { lines.push(""); continue; }
      if (tag === "BLOCKQUOTE") {
        newline();
        if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
        const inner = htmlToText(child.innerHTML).split("\n");
        while (inner.length && inner[inner.length - 1] === "") inner.pop();
        for (const line of inner) lines.push(line ? `> ${line}` : ">");
        lines.push("");
        continue;
      }
      if (tag === "HR") { newline(); push("----"); lines.push(""); continue; }
      if (BLOCKS.has(tag)) newline();
      if (tag === "LI") {
        const parent = child.parentElement;
        push(parent && parent.tagName === "OL" ? `${[...parent.children].indexOf(child) + 1}. ` : "- ");
      }
      walk(child, prefix);
      if (tag === "A") {
        const href = child.getAttribute("href") || "";
        const shown = child.textContent.trim();
        if (href && !href.startsWith("mailto:") && href !== shown) push(` <${href}>`);
      }
      if (BLOCKS.has(tag)) newline();
    }
  };
  walk(root, "");
  // Trailing spaces go, but "-- " stays: the signature separator (RFC 3676 §4.3).
  const text = lines.map((l) => (/^--[ \u00a0]*$/.test(l) ? "-- " :
    l.replace(/[ \u00a0]+$/, "").replace(/\u00a0/g, " "))).join("\n");
  return text.replace(/\n{3,}/g, "\n\n").replace(/^\n+/, "").replace(/\n+$/, "") + "\n";
}

// "Ann <ann@example.com>, bob@example.com" -> [{name, email}]; commas inside quotes stay.
export function parseAddresses(value) {
  const out = [];
  let current = "";
  let quoted = false;
  for (const c of String(value || "")) {
    if (c === '"') quoted = !quoted;
    if ((c === "," || c === ";") && !quoted) { out.push(current); current = ""; } else current += c;
  }
  out.push(current);
  return out.map((s) => s.trim()).filter(Boolean).map((item) => {
    const angle = /^(.*)<([^<>]*)>\s*$/.exec(item);
    if (angle) {
      const name = angle[1].trim().replace(/^"(.*)"$/, "$1").trim();
      return { name: name || null, email: angle[2].trim() };
    }
    return { name: null, email: item };
  });
}

export function formatAddresses(list) {
  return (list || []).map((a) => {
    if (!a.name) return a.email;
    const name = /[",;<>@]/.test(a.name) ? `"${a.name.replace(/"/g, "")}"` : a.name;
    return `${name} <${a.email}>`;
  }).join(", ");
}

const ADDRESS = /^[^\s@<>",;]+@[^\s@<>",;]+\.[^\s@<>",;]+$|^[^\s@<>",;]+@[^\s@<>",;.]+$/;

function withPrefix(prefix, subject) {
  const s = (subject || "").trim();
  return new RegExp(`^${prefix}:`, "i").test(s) ? s : `${prefix}: ${s}`;
}

function sizeText(bytes) {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  return `${Math.max(1, Math.round(bytes / 1024))} KB`;
}

// A SetError (RFC 8620 §5.3, RFC 8621 §7.5) in words a person understands.
export function errorText(error) {
  if (!error) return "The server refused the message.";
  const detail = error.description ? ` (${error.description})` : "";
  switch (error.type) {
    case "invalidRecipients":
      return `These recipients were refused: ${(error.invalidRecipients || []).join(", ") || "unknown"}${detail}.`;
    case "noRecipients": return "Add at least one recipient in To, Cc or Bcc.";
    case "forbiddenFrom": return `You may not send from this address${detail}.`;
    case "forbiddenMailFrom": return `You may not send from this address${detail}.`;
    case "forbiddenToSend": return `Sending is not allowed for this account${detail}.`;
    case "overQuota": return `Your mailbox is full: the message could not be stored${detail}.`;
    case "tooLarge": return `The message is too large for the server${detail}.`;
    case "tooManyRecipients": return `Too many recipients${detail}.`;
    case "invalidProperties": return `The message has an invalid field${detail}.`;
    case "invalidEmail": return `The message is not valid${detail}.`;
    case "blobNotFound": return "An attachment is no longer on the server: remove it and attach it again.";
    case "cannotUnsend": return "Too late: the message was already sent.";
    default: return `The server refused the message: ${error.type}${detail}.`;
  }
}

function el(tag, attributes = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children);
  return node;
}

let counter = 0;

// One open compose form.
class Draft {
  constructor(composer, options) {
    this.composer = composer;
    this.api = composer.api;
    this.client = composer.api.client;
    this.options = options;
    this.mode = options.mode || "new";
    this.emailId = null;         // the stored draft version (replaced at each save)
    this.inReplyTo = null;
    this.references = null;
    this.original = null;        // the email replied to or forwarded (its id, keyword)
    this.attachments = [];       // {name, type, size, blobId|null, row, xhr}
    this.plain = false;
    this.dirty = false;
    this.saving = Promise.resolve();
    this.timer = null;
    this.closed = false;
    this.signature = null;       // what was inserted: {html} or {text}
    this.build();
  }

  build() {
    const id = `compose-${++counter}`;
    const field = (name, label, type = "text") => {
      const input = el("input", { id: `${id}-${name}`, type, name, class: INPUT,
                                  autocomplete: "off", spellcheck: name === "subject" ? "true" : "false" });
      if (name !== "subject") input.dataset.addresses = name;
      input.addEventListener("input", () => this.changed());
      const row = el("div", { class: "flex items-center gap-2" },
        [el("label", { for: input.id, class: "w-16 shrink-0 text-sm text-slate-600 dark:text-slate-400", text: label }), input]);
      return [input, row];
    };
    this.title = el("h2", { id: `${id}-title`, class: "text-base font-semibold", text: "New message" });
    this.alert = el("p", { role: "alert", class: "hidden rounded bg-red-100 px-2 py-1 text-sm text-red-900 dark:bg-red-950 dark:text-red-100" });
    this.status = el("p", { role: "status", class: "text-xs text-slate-500 dark:text-slate-400" });
    this.from = el("select", { id: `${id}-from`, class: INPUT });
    this.from.addEventListener("change", () => { this.swapSignature(); this.changed(); });
    const fromRow = el("div", { class: "flex items-center gap-2" },
      [el("label", { for: this.from.id, class: "w-16 shrink-0 text-sm text-slate-600 dark:text-slate-400", text: "From" }), this.from]);
    const [to, toRow] = field("to", "To");
    const [cc, ccRow] = field("cc", "Cc");
    const [bcc, bccRow] = field("bcc", "Bcc");
    const [subject, subjectRow] = field("subject", "Subject");
    this.fields = { to, cc, bcc, subject };

    // The editor toolbar: formatting (rich mode), plain-text toggle, other modules' buttons.
    const format = (label, action, key) => {
      const b = el("button", { type: "button", class: BUTTON, text: label, title: key || null });
      b.addEventListener("click", () => { if (!this.plain) action(); });
      return b;
    };
    this.formatting = el("span", { class: "contents" }, [
      format("Bold", () => this.toggleFormat("B", () => this.squire.bold(), () => this.squire.removeBold())),
      format("Italic", () => this.toggleFormat("I", () => this.squire.italic(), () => this.squire.removeItalic())),
      format("Bulleted list", () => this.squire.makeUnorderedList()),
      format("Numbered list", () => this.squire.makeOrderedList()),
      format("Quote", () => this.squire.increaseQuoteLevel()),
      format("Link", () => {
        const url = window.prompt("Link address");
        if (url) this.squire.makeLink(/^[a-z]+:/i.test(url) ? url : `https://${url}`);
      }),
    ]);
    this.plainToggle = el("button", { type: "button", class: BUTTON, "aria-pressed": "false", text: "Plain text" });
    this.plainToggle.addEventListener("click", () => this.setPlain(!this.plain));
    this.slot = el("span", { class: "contents" });
    const toolbar = el("div", { role: "toolbar", "aria-label": "Formatting", class: "flex flex-wrap items-center gap-1 border-b border-slate-200 pb-1 dark:border-slate-800" },
      [this.formatting, this.plainToggle, this.slot]);

    this.editorRoot = el("div", { role: "textbox", "aria-multiline": "true", "aria-label": "Message body",
      class: "compose-editor min-h-48 flex-1 overflow-y-auto rounded border border-slate-300 p-2 text-sm outline-none focus-visible:ring-2 focus-visible:ring-sky-500 dark:border-slate-700" });
    this.textarea = el("textarea", { "aria-label": "Message body", class: "hidden min-h-48 flex-1 rounded border border-slate-300 bg-white p-2 font-mono text-sm dark:border-slate-700 dark:bg-slate-900" });
    this.textarea.addEventListener("input", () => this.changed());
    this.squire = new Squire(this.editorRoot, { sanitizeToDOMFragment, blockTag: "DIV" });
    this.squire.addEventListener("input", () => this.changed());

    // Attachments: a picker, drag-and-drop onto the form, a list with progress bars.
    this.fileInput = el("input", { type: "file", multiple: true, class: "hidden", "aria-label": "Attach files" });
    this.fileInput.addEventListener("change", () => { this.addFiles([...this.fileInput.files]); this.fileInput.value = ""; });
    const attach = el("button", { type: "button", class: BUTTON, text: "Attach files" });
    attach.addEventListener("click", () => this.fileInput.click());
    this.list = el("ul", { "aria-label": "Attachments", class: "flex flex-col gap-1 text-sm" });

    // Send later: a date-time picker (its time is the browser's; sent as UTC HOLDUNTIL).
    this.sendAt = el("input", { type: "datetime-local", id: `${id}-send-at`, class: INPUT });
    this.schedule = el("button", { type: "button", class: BUTTON, text: "Schedule send" });
    this.schedule.addEventListener("click", () => this.send({ later: true }));
    this.laterRow = el("div", { class: "hidden flex-wrap items-center gap-2" }, [
      el("label", { for: this.sendAt.id, class: "text-sm", text: "Send at" }), this.sendAt, this.schedule]);
    const laterToggle = el("button", { type: "button", class: BUTTON, text: "Send later", "aria-expanded": "false" });
    laterToggle.addEventListener("click", () => {
      const open = this.laterRow.classList.contains("hidden");
      this.laterRow.classList.toggle("hidden", !open);
      this.laterRow.classList.toggle("flex", open);
      laterToggle.setAttribute("aria-expanded", String(open));
      if (open) this.sendAt.focus();
    });
    laterToggle.hidden = !this.composer.maxDelayedSend();

    this.sendButton = el("button", { type: "button", class: PRIMARY, text: "Send" });
    this.sendButton.addEventListener("click", () => this.send({}));
    const save = el("button", { type: "button", class: BUTTON, text: "Save draft" });
    save.addEventListener("click", () => this.saveNow());
    const discard = el("button", { type: "button", class: BUTTON, text: "Discard" });
    discard.addEventListener("click", () => this.discard());
    const close = el("button", { type: "button", class: BUTTON, text: "Close" });
    close.addEventListener("click", () => this.close());
    const signatures = el("button", { type: "button", class: BUTTON, text: "Signatures" });
    signatures.addEventListener("click", async () => {
      await editSignatures(this.api, this.composer, this.from.value);
      if (!this.closed) this.swapSignature();
    });

    this.root = el("dialog", { "aria-labelledby": this.title.id,
      class: "m-auto flex h-[90dvh] w-[min(56rem,96vw)] flex-col gap-2 rounded-lg border border-slate-300 bg-white p-3 text-slate-900 shadow-xl backdrop:bg-slate-900/40 dark:border-slate-700 dark:bg-slate-950 dark:text-slate-100" }, [
      el("div", { class: "flex items-center gap-2" }, [this.title, el("span", { class: "ml-auto" }), this.status]),
      this.alert, fromRow, toRow, ccRow, bccRow, subjectRow, toolbar,
      this.editorRoot, this.textarea,
      el("div", { class: "flex flex-wrap items-center gap-2" }, [attach, this.fileInput]),
      this.list, this.laterRow,
      el("div", { class: "flex flex-wrap items-center gap-2" }, [this.sendButton, laterToggle, save, discard, close, signatures]),
    ]);
    // A closed dialog is display:none (Tailwind's flex would keep it shown).
    this.root.classList.add("[&:not([open])]:hidden");
    this.root.addEventListener("cancel", (event) => { event.preventDefault(); this.close(); });
    this.root.addEventListener("dragover", (event) => {
      if (event.dataTransfer && [...event.dataTransfer.types].includes("Files")) {
        event.preventDefault();
        event.dataTransfer.dropEffect = "copy";
      }
    }, true);
    this.root.addEventListener("drop", (event) => {
      const files = event.dataTransfer ? [...event.dataTransfer.files] : [];
      if (files.length) {
        event.preventDefault();
        event.stopPropagation();
        this.addFiles(files);
      }
    }, true);

    this.detail = {
      root: this.root,
      slots: { toolbar: this.slot },
      editor: {
        getHTML: () => this.getHTML(),
        setHTML: (html) => this.setHTML(html),
        insertHTML: (html) => this.insertHTML(html),
        get plain() { return draft.plain; },
      },
      fields: this.fields,
      changed: () => this.changed(),
    };
    const draft = this;
  }

  toggleFormat(tag, on, off) {
    if (this.squire.hasFormat(tag)) off(); else on();
    this.squire.focus();
  }

  // --- body -----------------------------------------------------------------------
  getHTML() {
    return this.plain ? textToHTML(this.textarea.value) : this.squire.getHTML();
  }

  getText() {
    return this.plain ? this.textarea.value : htmlToText(this.squire.getHTML());
  }

  setHTML(html) {
    if (this.plain) this.textarea.value = htmlToText(sanitize(html));
    else this.squire.setHTML(html || "");
    this.changed();
  }

  insertHTML(html) {
    if (this.plain) {
      const text = htmlToText(sanitize(html));
      const start = this.textarea.selectionStart;
      const value = this.textarea.value;
      this.textarea.value = value.slice(0, start) + text + value.slice(this.textarea.selectionEnd);
    } else {
      this.squire.insertHTML(html || "");
    }
    this.changed();
  }

  setPlain(plain) {
    if (plain === this.plain) return;
    if (plain) {
      this.textarea.value = htmlToText(this.squire.getHTML());
    } else {
      this.squire.setHTML(textToHTML(this.textarea.value));
    }
    this.plain = plain;
    this.plainToggle.setAttribute("aria-pressed", String(plain));
    this.editorRoot.classList.toggle("hidden", plain);
    this.textarea.classList.toggle("hidden", !plain);
    this.textarea.classList.toggle("flex", plain);
    this.formatting.classList.toggle("hidden", plain);
    this.formatting.classList.toggle("contents", !plain);
    if (this.signature) this.signature = this.signatureFor(this.identity());
    this.changed();
  }

  // --- signatures (per identity; swapped when the From changes) ----------------------
  identity() {
    return this.composer.identities.find((i) => i.id === this.from.value) || this.composer.identities[0];
  }

  signatureFor(identity) {
    if (!identity) return null;
    const text = identity.textSignature || "";
    const html = identity.htmlSignature ? sanitize(identity.htmlSignature) : (text ? textToHTML(text) : "");
    if (!text && !html) return null;
    return { text: text || htmlToText(html).trimEnd(), html };
  }

  insertSignature(identity) {
    const signature = this.signatureFor(identity);
    this.signature = signature;
    if (!signature) return;
    if (this.plain) {
      this.textarea.value = this.textarea.value.replace(/\n*$/, "") + `\n\n-- \n${signature.text}\n`;
    } else {
      const holder = document.createElement("div");
      holder.innerHTML = sanitize(this.squire.getHTML());
      const block = document.createElement("div");
      block.dataset.signature = "1";
      block.innerHTML = `<div>-- </div>${signature.html}`;
      const quote = holder.querySelector("[data-quote]");
      if (quote) quote.before(block, document.createElement("div"));
      else holder.append(block);
      this.squire.setHTML(holder.innerHTML);
    }
  }

  removeSignature() {
    if (this.plain) {
      const old = this.signature;
      const value = this.textarea.value;
      if (old) {
        const block = `\n\n-- \n${old.text}\n`;
        const at = value.lastIndexOf(block);
        if (at >= 0) this.textarea.value = value.slice(0, at) + value.slice(at + block.length);
      }
      return;
    }
    const found = this.editorRoot.querySelector("[data-signature]");
    if (found) {
      const holder = document.createElement("div");
      holder.innerHTML = sanitize(this.squire.getHTML());
      const mine = holder.querySelector("[data-signature]");
      if (mine) mine.remove();
      this.squire.setHTML(holder.innerHTML);
    }
  }

  swapSignature() {
    this.removeSignature();
    this.insertSignature(this.identity());
  }

  // --- fields ---------------------------------------------------------------------
  addresses(name) {
    return parseAddresses(this.fields[name].value);
  }

  validate() {
    for (const [name, label] of [["to", "To"], ["cc", "Cc"], ["bcc", "Bcc"]]) {
      for (const address of this.addresses(name)) {
        if (!ADDRESS.test(address.email)) {
          return `${label}: “${address.email}” is not an email address.`;
        }
      }
    }
    return null;
  }

  showError(text) {
    this.alert.textContent = text || "";
    this.alert.classList.toggle("hidden", !text);
  }

  // The Email/set creation object of this version of the draft (RFC 8621 §4.6).
  email() {
    const identity = this.identity();
    const obj = {
      mailboxIds: { [this.composer.mailbox("drafts")]: true },
      keywords: { $draft: true, $seen: true },
      from: [{ name: identity.name || null, email: identity.email }],
      subject: this.fields.subject.value.replace(/[\r\n]+/g, " "),
      bodyValues: {},
    };
    for (const name of ["to", "cc", "bcc"]) {
      const list = this.addresses(name).filter((a) => ADDRESS.test(a.email));
      if (list.length) obj[name] = list;
    }
    if (identity.replyTo && identity.replyTo.length) obj.replyTo = identity.replyTo;
    if (this.inReplyTo) obj.inReplyTo = this.inReplyTo;
    if (this.references) obj.references = this.references;
    obj.textBody = [{ partId: "text", type: "text/plain" }];
    obj.bodyValues.text = { value: this.getText() };
    if (!this.plain) {
      obj.htmlBody = [{ partId: "html", type: "text/html" }];
      obj.bodyValues.html = { value: `<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>${this.squire.getHTML()}</body></html>` };
    }
    const attached = this.attachments.filter((a) => a.blobId);
    if (attached.length) {
      obj.attachments = attached.map((a) => ({ blobId: a.blobId, type: a.type || "application/octet-stream",
                                               name: a.name, disposition: "attachment" }));
    }
    return obj;
  }

  // --- saving ---------------------------------------------------------------------
  changed() {
    if (this.closed || this.loading) return;
    this.dirty = true;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.save().catch(() => {}), AUTOSAVE_MS);
  }

  // Store this version in Drafts and remove the previous one, in one Email/set: an IMAP
  // client sees the draft replaced, never two versions.
  save() {
    clearTimeout(this.timer);
    this.saving = this.saving.catch(() => {}).then(async () => {
      if (!this.dirty || this.closed) return this.emailId;
      if (this.attachments.some((a) => !a.blobId && !a.failed)) {
        this.timer = setTimeout(() => this.save().catch(() => {}), AUTOSAVE_MS);
        return this.emailId;
      }
      this.dirty = false;
      const args = { create: { draft: this.email() } };
      if (this.emailId) args.destroy = [this.emailId];
      let out;
      try {
        out = await this.client.call("Email/set", args);
      } catch (error) {
        this.dirty = true;
        this.status.textContent = "The draft could not be saved.";
        throw error;
      }
      const made = out.created && out.created.draft;
      if (!made) {
        this.dirty = true;
        const why = errorText(out.notCreated && out.notCreated.draft);
        this.status.textContent = "The draft could not be saved.";
        this.showError(`The draft could not be saved: ${why}`);
        throw new JMAPError("notCreated", why);
      }
      this.emailId = made.id;
      await this.followParts(made.id);
      this.status.textContent = `Draft saved at ${new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`;
      return this.emailId;
    });
    return this.saving;
  }

  // Attachments taken from a stored message (a forward, a reopened draft, the last saved
  // version) name its parts; that message is replaced at the next save, so they are
  // pointed at the same parts of the version just stored.
  async followParts(emailId) {
    const sent = this.attachments.filter((a) => a.blobId);
    if (!sent.length || !sent.some((a) => !a.blobId.startsWith("U"))) return;
    try {
      const got = await this.client.call("Email/get", { ids: [emailId], properties: ["attachments"] });
      const parts = got.list[0] ? got.list[0].attachments || [] : [];
      if (parts.length !== sent.length) return;
      sent.forEach((a, i) => { a.blobId = parts[i].blobId; });
    } catch (error) { /* the next save reports a missing blob in words */ }
  }

  async saveNow() {
    this.dirty = true;
    try { await this.save(); } catch (error) { /* shown in the status line */ }
  }

  // --- attachments ----------------------------------------------------------------
  addFiles(files) {
    const limit = this.composer.maxUpload();
    for (const file of files) {
      const item = { name: file.name || "attachment", type: file.type || "application/octet-stream",
                     size: file.size, blobId: null, failed: false };
      this.attachments.push(item);
      this.attachmentRow(item);
      if (limit && file.size > limit) {
        this.fail(item, `“${item.name}” is ${sizeText(file.size)}: larger than the ${sizeText(limit)} the server accepts. It was not attached.`);
        continue;
      }
      this.upload(item, file);
    }
  }

  attachmentRow(item) {
    const name = el("span", { class: "truncate", text: `${item.name} (${sizeText(item.size)})` });
    item.progress = el("progress", { max: "100", value: "0", "aria-label": `Uploading ${item.name}`, class: "h-2 w-32" });
    const remove = el("button", { type: "button", class: BUTTON, text: "Remove", "aria-label": `Remove ${item.name}` });
    remove.addEventListener("click", () => {
      if (item.xhr) item.xhr.abort();
      this.attachments = this.attachments.filter((a) => a !== item);
      item.row.remove();
      this.changed();
    });
    item.row = el("li", { class: "flex items-center gap-2" }, [name, item.progress, remove]);
    if (item.blobId) item.progress.remove();
    this.list.append(item.row);
  }

  fail(item, text) {
    item.failed = true;
    this.attachments = this.attachments.filter((a) => a !== item);
    if (item.row) item.row.remove();
    this.showError(text);
  }

  // XMLHttpRequest rather than fetch: upload progress events (RFC 8620 §6.1 upload).
  upload(item, file) {
    const client = this.client;
    const url = client.session.uploadUrl.replace("{accountId}", encodeURIComponent(client.accountId));
    const xhr = new XMLHttpRequest();
    item.xhr = xhr;
    xhr.open("POST", url);
    xhr.withCredentials = true;
    xhr.setRequestHeader("X-CSRF-Token", client.csrf);
    xhr.setRequestHeader("Content-Type", item.type);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) item.progress.value = Math.floor((event.loaded / event.total) * 100);
    });
    xhr.addEventListener("load", () => {
      item.xhr = null;
      let body = {};
      try { body = JSON.parse(xhr.responseText || "{}"); } catch (error) { body = {}; }
      if (xhr.status === 201 && body.blobId) {
        item.blobId = body.blobId;
        item.progress.value = 100;
        item.progress.remove();
        item.row.dataset.uploaded = "1";
        this.changed();
        return;
      }
      const why = body.detail || body.title || `HTTP ${xhr.status}`;
      const words = xhr.status === 413
        ? `“${item.name}” was refused: it is larger than the server accepts or does not fit in your quota (${why}).`
        : `“${item.name}” could not be uploaded: ${why}.`;
      this.fail(item, words);
    });
    xhr.addEventListener("error", () => {
      item.xhr = null;
      this.fail(item, `“${item.name}” could not be uploaded: the connection failed.`);
    });
    xhr.send(file);
  }

  // --- sending --------------------------------------------------------------------
  async send({ later = false }) {
    this.showError("");
    const invalid = this.validate();
    if (invalid) { this.showError(invalid); return; }
    const rcpt = [...this.addresses("to"), ...this.addresses("cc"), ...this.addresses("bcc")];
    if (!rcpt.length) { this.showError(errorText({ type: "noRecipients" })); return; }
    if (this.attachments.some((a) => !a.blobId)) {
      this.showError("Wait until the attachments have been uploaded.");
      return;
    }
    let envelope = null;
    let when = null;
    if (later) {
      if (!this.sendAt.value) { this.showError("Send at: choose a date and time."); return; }
      when = new Date(this.sendAt.value);
      if (Number.isNaN(when.getTime())) { this.showError("Send at: not a valid date and time."); return; }
      const stamp = when.toISOString().replace(/\.\d{3}Z$/, "Z");
      const seen = new Set();
      envelope = {
        mailFrom: { email: this.identity().email, parameters: { HOLDUNTIL: stamp } },
        rcptTo: rcpt.filter((a) => !seen.has(a.email.toLowerCase()) && seen.add(a.email.toLowerCase()))
          .map((a) => ({ email: a.email })),
      };
    }
    this.sendButton.disabled = true;
    this.schedule.disabled = true;
    clearTimeout(this.timer);
    try {
      await this.saving.catch(() => {});
      const drafts = this.composer.mailbox("drafts");
      const sent = this.composer.mailbox("sent");
      const emailSet = { create: { draft: this.email() } };
      if (this.emailId) emailSet.destroy = [this.emailId];
      const submission = { identityId: this.identity().id, emailId: "#draft" };
      if (envelope) submission.envelope = envelope;
      const onSuccess = { [`mailboxIds/${drafts}`]: null, "keywords/$draft": null };
      if (sent) onSuccess[`mailboxIds/${sent}`] = true;
      const calls = [["Email/set", emailSet, "e"],
        ["EmailSubmission/set", { create: { send: submission },
                                  onSuccessUpdateEmail: { "#send": onSuccess } }, "s"]];
      if (this.original && this.original.keyword) {
        calls.push(["Email/set", { update: { [this.original.id]: { [`keywords/${this.original.keyword}`]: true } } }, "k"]);
      }
      let out;
      try {
        out = await this.client.batch(calls);
      } catch (error) {
        this.showError(`The message was not sent: ${error.message}.`);
        return;
      }
      const made = out.e.created && out.e.created.draft;
      if (!made) {
        this.showError(`The message was not sent: ${errorText(out.e.notCreated && out.e.notCreated.draft)}`);
        return;
      }
      this.emailId = made.id;
      this.dirty = false;
      const result = out.s.created && out.s.created.send;
      if (!result) {
        this.showError(`The message was not sent: ${errorText(out.s.notCreated && out.s.notCreated.send)} It is kept in Drafts.`);
        return;
      }
      this.closed = true;
      this.root.close();
      this.root.remove();
      this.composer.current = null;
      this.composer.sent(result, this.emailId, later ? when : null);
    } finally {
      this.sendButton.disabled = false;
      this.schedule.disabled = false;
    }
  }

  async close() {
    if (this.closed) return;
    clearTimeout(this.timer);
    if (this.dirty && this.hasContent()) {
      try { await this.save(); } catch (error) { return; }  // kept open: the error shows
    }
    this.closed = true;
    for (const a of this.attachments) if (a.xhr) a.xhr.abort();
    this.root.close();
    this.root.remove();
    if (this.composer.current === this) this.composer.current = null;
  }

  hasContent() {
    return Boolean(this.fields.to.value || this.fields.cc.value || this.fields.bcc.value ||
      this.fields.subject.value || this.getText().trim() || this.attachments.length);
  }

  async discard() {
    clearTimeout(this.timer);
    this.closed = true;
    for (const a of this.attachments) if (a.xhr) a.xhr.abort();
    await this.saving.catch(() => {});
    if (this.emailId) await this.client.call("Email/set", { destroy: [this.emailId] }).catch(() => {});
    this.root.close();
    this.root.remove();
    if (this.composer.current === this) this.composer.current = null;
  }
}

class Composer {
  constructor(api) {
    this.api = api;
    this.identities = [];
    this.current = null;
    this.toast = null;
  }

  maxUpload() {
    const core = this.api.client.session.capabilities["urn:ietf:params:jmap:core"] || {};
    return core.maxSizeUpload || 0;
  }

  maxDelayedSend() {
    const account = this.api.client.session.accounts[this.api.client.accountId];
    const caps = (account && account.accountCapabilities && account.accountCapabilities[SUBMISSION]) || {};
    return caps.maxDelayedSend || 0;
  }

  mailbox(role) {
    for (const box of this.api.folders.boxes.values()) if (box.role === role) return box.id;
    return null;
  }

  async loadIdentities() {
    const got = await this.api.client.call("Identity/get", { ids: null });
    this.identities = got.list;
    return this.identities;
  }

  async open(options = {}) {
    if (this.current) await this.current.close();
    if (this.current) throw new Error("the open message could not be saved");
    await this.loadIdentities();
    const draft = new Draft(this, options);
    this.current = draft;
    draft.loading = true;
    for (const identity of this.identities) {
      const label = identity.name ? `${identity.name} <${identity.email}>` : identity.email;
      draft.from.append(el("option", { value: identity.id, text: label }));
    }
    document.body.append(draft.root);
    try {
      await this.fill(draft, options);
    } finally {
      draft.loading = false;
    }
    draft.root.showModal();
    const first = ["to", "subject"].map((n) => draft.fields[n]).find((f) => !f.value);
    if (first && draft.mode !== "reply" && draft.mode !== "replyAll") first.focus();
    else draft.squire.focus();
    this.api.events.dispatchEvent(new CustomEvent("compose", { detail: draft.detail }));
    return draft.detail;
  }

  // The form's content for each mode (RFC 5322 §3.6.4 for In-Reply-To/References).
  async fill(draft, options) {
    const mode = draft.mode;
    const titles = { new: "New message", reply: "Reply", replyAll: "Reply to all",
                     forward: "Forward", forwardAttached: "Forward as attachment", draft: "Draft" };
    draft.title.textContent = titles[mode] || "New message";
    let original = null;
    if (options.emailId) {
      const got = await this.api.client.call("Email/get", { ids: [options.emailId],
        properties: ORIGINAL_PROPERTIES, fetchHTMLBodyValues: true, fetchTextBodyValues: true,
        maxBodyValueBytes: 1048576 });
      original = got.list[0];
      if (!original) throw new JMAPError("notFound", "the message is no longer there");
    }
    const me = new Set(this.identities.map((i) => i.email.toLowerCase()));
    const notMe = (list) => (list || []).filter((a) => !me.has(a.email.toLowerCase()));
    let body = "";
    let withSignature = true;
    if (mode === "draft" && original) {
      draft.emailId = original.id;
      const from = (original.from || [])[0];
      const identity = from && this.identities.find((i) => i.email.toLowerCase() === from.email.toLowerCase());
      if (identity) draft.from.value = identity.id;
      draft.fields.to.value = formatAddresses(original.to);
      draft.fields.cc.value = formatAddresses(original.cc);
      draft.fields.bcc.value = formatAddresses(original.bcc);
      draft.fields.subject.value = original.subject || "";
      draft.inReplyTo = original.inReplyTo || null;
      draft.references = original.references || null;
      const html = bodyOf(original, "htmlBody");
      if (html !== null) body = html;
      else {
        draft.setPlain(true);
        draft.textarea.value = bodyOf(original, "textBody") || "";
      }
      for (const part of original.attachments || []) {
        const item = { name: part.name || "attachment", type: part.type, size: part.size,
                       blobId: part.blobId, failed: false };
        draft.attachments.push(item);
        draft.attachmentRow(item);
      }
      withSignature = false;
    } else if (original && (mode === "reply" || mode === "replyAll")) {
      const author = original.replyTo && original.replyTo.length ? original.replyTo : original.from;
      // One's own message (from Sent): the reply goes to its recipients.
      const own = (author || []).length && !notMe(author).length;
      let to = own ? [...(original.to || [])] : [...(author || [])];
      const cc = [];
      if (mode === "replyAll") {
        const seen = new Set(to.map((a) => a.email.toLowerCase()));
        const add = (list, into) => {
          for (const a of notMe(list)) {
            if (!seen.has(a.email.toLowerCase())) { seen.add(a.email.toLowerCase()); into.push(a); }
          }
        };
        add(original.to, to);
        add(original.cc, cc);
        // Replying to one's own message: to its recipients, not to oneself.
        if (notMe(to).length) to = notMe(to);
      }
      draft.fields.to.value = formatAddresses(to);
      draft.fields.cc.value = formatAddresses(cc);
      draft.fields.subject.value = withPrefix("Re", original.subject);
      const id = (original.messageId || [])[0];
      if (id) {
        draft.inReplyTo = [id];
        const refs = original.references || original.inReplyTo || [];
        draft.references = [...refs.filter((r) => r !== id), id];
      }
      draft.original = { id: original.id, keyword: "$answered" };
      const when = new Date(original.sentAt || original.receivedAt).toLocaleString();
      const who = (original.from || [])[0];
      const name = who ? (who.name || who.email) : "someone";
      body = `<div><br></div><div data-quote="1">On ${escapeHTML(when)}, ${escapeHTML(name)} wrote:</div><blockquote>${quoted(original)}</blockquote>`;
    } else if (original && mode === "forward") {
      draft.fields.subject.value = withPrefix("Fwd", original.subject);
      const id = (original.messageId || [])[0];
      if (id) draft.references = [...(original.references || []).filter((r) => r !== id), id];
      draft.original = { id: original.id, keyword: "$forwarded" };
      const head = [["From", formatAddresses(original.from)], ["Date", new Date(original.sentAt || original.receivedAt).toLocaleString()],
        ["Subject", original.subject || ""], ["To", formatAddresses(original.to)]];
      if (original.cc && original.cc.length) head.push(["Cc", formatAddresses(original.cc)]);
      body = "<div><br></div><div data-quote=\"1\">---------- Forwarded message ----------</div>" +
        head.map(([k, v]) => `<div>${k}: ${escapeHTML(v)}</div>`).join("") + `<div><br></div>${quoted(original)}`;
      for (const part of original.attachments || []) {
        const item = { name: part.name || "attachment", type: part.type, size: part.size,
                       blobId: part.blobId, failed: false };
        draft.attachments.push(item);
        draft.attachmentRow(item);
      }
    } else if (original && mode === "forwardAttached") {
      draft.fields.subject.value = withPrefix("Fwd", original.subject);
      const id = (original.messageId || [])[0];
      if (id) draft.references = [...(original.references || []).filter((r) => r !== id), id];
      draft.original = { id: original.id, keyword: "$forwarded" };
      const name = `${(original.subject || "message").replace(/[\\/:*?"<>|\r\n]+/g, " ").trim() || "message"}.eml`;
      const item = { name, type: "message/rfc822", size: 0, blobId: original.blobId, failed: false };
      draft.attachments.push(item);
      draft.attachmentRow(item);
    }
    if (options.to) draft.fields.to.value = options.to;
    if (options.cc) draft.fields.cc.value = options.cc;
    if (options.bcc) draft.fields.bcc.value = options.bcc;
    if (options.subject) draft.fields.subject.value = options.subject;
    if (options.html) body = sanitize(options.html) + body;
    else if (options.text) body = textToHTML(options.text) + body;
    if (!draft.plain) draft.squire.setHTML(body);
    if (withSignature) draft.insertSignature(draft.identity());
    if (mode !== "draft" && mode !== "new") draft.dirty = true;
  }

  // After a submission: a toast; while the submission is pending (held for undo or until
  // its time) an Undo button cancels it and puts the message back into Drafts.
  sent(result, emailId, later) {
    if (this.toast) this.toast.remove();
    const text = el("span", { text: later ? `Scheduled for ${later.toLocaleString()}.` : "Message sent." });
    const toast = el("div", { role: "status", "aria-label": "Sending",
      class: "fixed bottom-4 left-1/2 z-50 flex -translate-x-1/2 items-center gap-3 rounded-lg bg-slate-900 px-4 py-2 text-sm text-white shadow-lg dark:bg-slate-100 dark:text-slate-900" }, [text]);
    this.toast = toast;
    document.body.append(toast);
    const done = (message, after = 4000) => {
      text.textContent = message;
      for (const b of toast.querySelectorAll("button")) b.remove();
      setTimeout(() => toast.remove(), after);
    };
    if (result.undoStatus !== "pending") { done("Message sent."); return; }
    const undo = el("button", { type: "button", class: "rounded-md px-2 py-0.5 font-semibold underline", text: later ? "Cancel sending" : "Undo" });
    toast.append(undo);
    let finished = false;
    undo.addEventListener("click", async () => {
      finished = true;
      undo.disabled = true;
      const drafts = this.mailbox("drafts");
      const sent = this.mailbox("sent");
      const back = { [`mailboxIds/${drafts}`]: true, "keywords/$draft": true };
      if (sent) back[`mailboxIds/${sent}`] = null;
      let out;
      try {
        out = await this.api.client.call("EmailSubmission/set", {
          update: { [result.id]: { undoStatus: "canceled" } },
          onSuccessUpdateEmail: { [result.id]: back } });
      } catch (error) {
        done(`Could not cancel: ${error.message}`, 8000);
        return;
      }
      if (!out.updated || !(result.id in out.updated)) {
        done(errorText(out.notUpdated && out.notUpdated[result.id]), 8000);
        return;
      }
      done(later ? "Sending canceled: the message is back in Drafts." : "Sending undone: the message is back in Drafts.");
      await this.open({ mode: "draft", emailId });
    });
    if (later) { setTimeout(() => { if (!finished) toast.remove(); }, 15000); return; }
    // Held for undo: follow the submission until it leaves "pending".
    const poll = async (tries) => {
      if (finished) return;
      let got;
      try {
        got = await this.api.client.call("EmailSubmission/get", { ids: [result.id], properties: ["undoStatus"] });
      } catch (error) { got = null; }
      if (finished) return;
      const status = got && got.list[0] ? got.list[0].undoStatus : "pending";
      if (status !== "pending" || tries <= 0) { finished = true; done(status === "canceled" ? "Sending canceled." : "Message sent."); return; }
      setTimeout(() => poll(tries - 1), 1000);
    };
    setTimeout(() => poll(600), 1000);
  }
}

// The body of an email as HTML for quoting: its HTML (sanitised) or its text.
function bodyOf(email, which) {
  const parts = email[which] || [];
  const values = email.bodyValues || {};
  const part = parts.find((p) => values[p.partId]);
  if (!part) return null;
  const value = values[part.partId].value;
  if (which === "htmlBody" && part.type === "text/html") return sanitize(value);
  if (which === "htmlBody") return textToHTML(value);
  return value;
}

function quoted(email) {
  const html = bodyOf(email, "htmlBody");
  if (html !== null) return html;
  return textToHTML(bodyOf(email, "textBody") || "");
}

// The signature editor: per identity, text and HTML (Identity/set, RFC 8621 §6.3).
// Resolves when the dialog closes.
async function editSignatures(api, composer, identityId) {
  const identities = await composer.loadIdentities();
  const choose = el("select", { id: "signature-identity", class: INPUT });
  for (const i of identities) choose.append(el("option", { value: i.id, text: i.email }));
  if (identityId && identities.some((i) => i.id === identityId)) choose.value = identityId;
  const text = el("textarea", { id: "signature-text", rows: "4", class: INPUT });
  const html = el("textarea", { id: "signature-html", rows: "4", class: INPUT });
  const alert = el("p", { role: "alert", class: "text-sm text-red-700 dark:text-red-300" });
  const show = () => {
    const i = identities.find((x) => x.id === choose.value);
    text.value = (i && i.textSignature) || "";
    html.value = (i && i.htmlSignature) || "";
  };
  choose.addEventListener("change", show);
  const save = el("button", { type: "button", class: PRIMARY, text: "Save signature" });
  const close = el("button", { type: "button", class: BUTTON, text: "Close" });
  const dialog = el("dialog", { "aria-labelledby": "signature-title",
    class: "m-auto w-[min(36rem,96vw)] flex-col gap-2 rounded-lg border border-slate-300 bg-white p-3 text-slate-900 shadow-xl backdrop:bg-slate-900/40 dark:border-slate-700 dark:bg-slate-950 dark:text-slate-100 [&[open]]:flex" }, [
    el("h2", { id: "signature-title", class: "text-base font-semibold", text: "Signatures" }), alert,
    el("label", { for: choose.id, class: "text-sm", text: "Identity" }), choose,
    el("label", { for: text.id, class: "text-sm", text: "Text signature" }), text,
    el("label", { for: html.id, class: "text-sm", text: "HTML signature" }), html,
    el("div", { class: "flex gap-2" }, [save, close])]);
  save.addEventListener("click", async () => {
    alert.textContent = "";
    const out = await api.client.call("Identity/set", { update: { [choose.value]: {
      textSignature: text.value, htmlSignature: html.value } } });
    if (out.updated && choose.value in out.updated) {
      const i = identities.find((x) => x.id === choose.value);
      i.textSignature = text.value;
      i.htmlSignature = html.value;
      alert.textContent = "";
      dialog.close();
      dialog.remove();
    } else {
      const e = out.notUpdated && out.notUpdated[choose.value];
      alert.textContent = `The signature was not saved: ${e ? e.description || e.type : "unknown error"}.`;
    }
  });
  close.addEventListener("click", () => { dialog.close(); dialog.remove(); });
  show();
  document.body.append(dialog);
  const closed = new Promise((resolve) => dialog.addEventListener("close", resolve));
  dialog.showModal();
  await closed;
}

export async function install(api) {
  const composer = new Composer(api);
  api.compose = {
    open: (options) => composer.open(options || {}),
    get current() { return composer.current ? composer.current.detail : null; },
  };
  const button = (label, handler) => {
    const b = el("button", { type: "button", class: BUTTON, text: label });
    b.addEventListener("click", handler);
    return b;
  };
  const failed = (error) => {
    const status = document.getElementById("status");
    if (status) status.textContent = `Could not open the message form: ${error.message}`;
  };
  const open = (mode) => () => {
    const email = api.reader.email;
    if (email) api.compose.open({ mode, emailId: email.id }).catch(failed);
  };
  // In the list's toolbar (it wraps at phone width; the header does not).
  api.slots.list.prepend(button("New message", () => api.compose.open({ mode: "new" }).catch(failed)));
  const editDraft = button("Edit draft", open("draft"));
  editDraft.hidden = true;
  api.slots.reader.append(button("Reply", open("reply")), button("Reply all", open("replyAll")),
    button("Forward", open("forward")), button("Forward as attachment", open("forwardAttached")),
    editDraft);
  // "Edit draft" only for drafts (the $draft keyword, RFC 8621 §4.1.1).
  api.events.addEventListener("open", async (event) => {
    const id = event.detail;
    editDraft.hidden = true;
    try {
      const got = await api.client.call("Email/get", { ids: [id], properties: ["keywords"] });
      const email = got.list[0];
      if (email && (email.keywords || {}).$draft && api.reader.wanted === id) editDraft.hidden = false;
    } catch (error) { /* the reader shows its own errors */ }
  });
}
