// The reading pane: headers, SPF/DKIM/DMARC results and spam score, the conversation
// (Thread/get), attachments (JMAP blob download), and the body in a sandboxed iframe served
// by /mail/body/<id> (sanitised on the server, its own CSP). Remote content only after the
// reader asks, for this message or always for this sender.
import { ref } from "./jmap.js";
import { senderText } from "./list.js";

const READ_PROPERTIES = ["id", "threadId", "mailboxIds", "keywords", "from", "to", "cc",
  "subject", "receivedAt", "sentAt", "hasAttachment", "attachments", "size",
  "header:Authentication-Results:asText:all", "header:X-Spam-Score:asText",
  "header:X-Spam-Flag:asText"];
const THREAD_PROPERTIES = ["id", "from", "subject", "receivedAt", "keywords", "preview"];

function addresses(list) {
  return (list || []).map((a) => (a.name ? `${a.name} <${a.email}>` : a.email)).join(", ");
}

// "dkim=pass header.d=example.com" -> the method results a person cares about.
export function checksText(results, score, flag) {
  const found = [];
  for (const field of results || []) {
    for (const method of ["spf", "dkim", "dmarc"]) {
      const match = new RegExp(`\\b${method}=(\\w+)`, "i").exec(field || "");
      if (match && !found.some((f) => f.startsWith(method.toUpperCase()))) {
        found.push(`${method.toUpperCase()} ${match[1].toLowerCase()}`);
      }
    }
  }
  if (score) found.push(`spam score ${score.trim()}${flag && flag.trim() === "YES" ? " (spam)" : ""}`);
  return found.length ? found.join(" · ") : "none recorded";
}

export class Reader {
  constructor(client, events) {
    this.client = client;
    this.events = events;
    this.email = null;
    this.remote = false;
    this.text = false;
    this.info = null;
    this.$ = (id) => document.getElementById(id);
    this.$("flag-toggle").addEventListener("click", () => this.toggle("$flagged"));
    this.$("seen-toggle").addEventListener("click", () => this.toggle("$seen"));
    this.$("text-toggle").addEventListener("click", () => {
      this.text = !this.text;
      this.$("text-toggle").setAttribute("aria-pressed", String(this.text));
      this.loadBody();
    });
    this.$("headers-toggle").addEventListener("click", () => this.toggleHeaders());
    this.$("remote-show").addEventListener("click", () => { this.remote = true; this.loadBody(); this.remoteBar(); });
    this.$("remote-always").addEventListener("click", () => this.allowSender());
    this.bodyLoaded = false;
    this.$("body").addEventListener("load", () => { this.bodyLoaded = true; });
  }

  async open(id) {
    this.wanted = id;   // the last one asked for wins over answers still on their way
    // The body is asked for at once, beside the headers' request (its own route, its own
    // sanitising): opening costs one round trip, not two.
    const early = !this.email || this.email.id !== id;
    if (early) {
      this.remote = false;
      this.text = false;
      this.loadBody(id);
    }
    const out = await this.client.batch([
      ["Email/get", { ids: [id], properties: READ_PROPERTIES }, "e"],
      ["Thread/get", { "#ids": ref("e", "Email/get", "/list/*/threadId") }, "t"],
      ["Email/get", { "#ids": ref("t", "Thread/get", "/list/*/emailIds"), properties: THREAD_PROPERTIES }, "m"],
    ]);
    const email = out.e.list[0];
    if (!email || this.wanted !== id) return;
    const changed = !this.email || this.email.id !== id;
    this.email = email;
    if (changed) {
      this.remote = false;
      this.text = false;
      this.$("text-toggle").setAttribute("aria-pressed", "false");
      this.$("all-headers").classList.add("hidden");
      this.$("headers-toggle").setAttribute("aria-expanded", "false");
    }
    this.$("reader-empty").classList.add("hidden");
    this.$("reader").classList.remove("hidden");
    this.$("reader").classList.add("flex");
    this.$("subject").textContent = email.subject || "(no subject)";
    this.$("from").textContent = addresses(email.from) || "(no sender)";
    this.$("to").textContent = addresses((email.to || []).concat(email.cc || [])) || "—";
    this.$("date").textContent = new Date(email.sentAt || email.receivedAt).toLocaleString();
    this.$("auth").textContent = checksText(email["header:Authentication-Results:asText:all"],
      email["header:X-Spam-Score:asText"], email["header:X-Spam-Flag:asText"]);
    this.$("source-link").href = `/mail/source/${encodeURIComponent(id)}`;
    this.showKeywords();
    this.showThread(out.m.list);
    this.showAttachments(email.attachments || []);
    if (changed) {
      if (!early) this.loadBody();
      // what the body holds of remote content: after the body, not competing with it
      this.afterBody(() => this.loadInfo(id));
      if (!(email.keywords || {}).$seen) this.setKeyword("$seen", true);
    }
  }

  showKeywords() {
    const k = this.email.keywords || {};
    this.$("flag-toggle").textContent = k.$flagged ? "Unflag" : "Flag";
    this.$("flag-toggle").setAttribute("aria-pressed", k.$flagged ? "true" : "false");
    this.$("seen-toggle").textContent = k.$seen ? "Mark as unread" : "Mark as read";
  }

  showThread(list) {
    const element = this.$("thread");
    if (list.length < 2) { element.classList.add("hidden"); element.replaceChildren(); return; }
    element.classList.remove("hidden");
    element.replaceChildren(...list.map((email) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "w-full truncate rounded px-2 py-0.5 text-left hover:bg-slate-100 dark:hover:bg-slate-800" +
        (email.id === this.email.id ? " font-semibold" : "");
      if (email.id === this.email.id) button.setAttribute("aria-current", "true");
      button.textContent = `${senderText(email)} · ${new Date(email.receivedAt).toLocaleDateString()} · ${email.preview || ""}`;
      button.addEventListener("click", () => this.events.dispatchEvent(new CustomEvent("open", { detail: email.id })));
      li.append(button);
      return li;
    }));
  }

  showAttachments(list) {
    this.$("attachments").replaceChildren(...list.map((part) => {
      const li = document.createElement("li");
      const link = document.createElement("a");
      link.href = this.client.downloadUrl(part.blobId, part.name || "attachment", part.type);
      link.setAttribute("download", part.name || "attachment");
      link.className = "inline-block rounded border border-slate-300 px-2 py-0.5 hover:bg-slate-100 dark:border-slate-700 dark:hover:bg-slate-800";
      const kb = Math.max(1, Math.round((part.size || 0) / 1024));
      link.textContent = `📎 ${part.name || "attachment"} (${kb} KB)`;
      li.append(link);
      return li;
    }));
  }

  loadBody(id = this.email.id) {
    const params = new URLSearchParams();
    if (this.remote) params.set("remote", "1");
    if (this.text) params.set("text", "1");
    const query = params.toString();
    this.bodyLoaded = false;
    this.$("body").src = `/mail/body/${encodeURIComponent(id)}${query ? "?" + query : ""}`;
  }

  afterBody(then) {
    if (this.bodyLoaded) { then(); return; }
    this.$("body").addEventListener("load", then, { once: true });
  }

  async loadInfo(id) {
    const reply = await fetch(`/mail/info/${encodeURIComponent(id)}`, { credentials: "same-origin" });
    if (!reply.ok || !this.email || this.email.id !== id) return;
    this.info = await reply.json();
    if (this.info.senderAllowed) this.remote = true;
    this.remoteBar();
  }

  remoteBar() {
    const bar = this.$("remote-bar");
    const show = this.info && this.info.remote > 0 && !this.remote;
    bar.classList.toggle("hidden", !show);
    bar.classList.toggle("flex", Boolean(show));
    if (show) {
      this.$("remote-text").textContent = `Remote content was blocked (${this.info.remote} item${this.info.remote === 1 ? "" : "s"}) to protect your privacy.`;
      this.$("remote-always").textContent = `Always from ${this.info.sender}`;
      this.$("remote-always").hidden = !this.info.sender;
    }
  }

  async allowSender() {
    const form = new URLSearchParams({ sender: this.info.sender, csrf_token: this.client.csrf });
    const reply = await fetch("/mail/remote-senders", { method: "POST", credentials: "same-origin",
      body: form, headers: { "X-CSRF-Token": this.client.csrf } });
    if (reply.ok) { this.remote = true; this.loadBody(); this.remoteBar(); }
  }

  async toggleHeaders() {
    const pre = this.$("all-headers");
    const open = pre.classList.contains("hidden");
    this.$("headers-toggle").setAttribute("aria-expanded", String(open));
    pre.classList.toggle("hidden", !open);
    if (open) {
      const got = await this.client.call("Email/get", { ids: [this.email.id], properties: ["headers"] });
      pre.textContent = (got.list[0] ? got.list[0].headers : []).map((h) => `${h.name}:${h.value}`).join("\n");
    }
  }

  async setKeyword(keyword, on) {
    const id = this.email.id;
    await this.client.call("Email/set", { update: { [id]: { [`keywords/${keyword}`]: on ? true : null } } });
    if (this.email && this.email.id === id) {
      this.email.keywords = { ...(this.email.keywords || {}) };
      if (on) this.email.keywords[keyword] = true; else delete this.email.keywords[keyword];
      this.showKeywords();
    }
    this.events.dispatchEvent(new CustomEvent("changed", { detail: [id] }));
  }

  toggle(keyword) {
    return this.setKeyword(keyword, !(this.email.keywords || {})[keyword]);
  }

  // After push: the open email's keywords may have changed elsewhere (``emails``: fresh
  // list properties of the changed emails).
  follow(emails) {
    const mine = this.email && emails.find((e) => e.id === this.email.id);
    if (mine && this.wanted === mine.id) {
      this.email.keywords = mine.keywords;
      this.showKeywords();
    }
  }

  close() {
    this.email = null;
    this.wanted = null;
    this.$("reader").classList.add("hidden");
    this.$("reader").classList.remove("flex");
    this.$("reader-empty").classList.remove("hidden");
    this.$("body").removeAttribute("src");
  }
}
