// A thin JMAP client (RFC 8620): the session, batched method calls with back-references,
// and push over EventSource with reconnection. Authentication is the page's session
// cookie; every POST carries the CSRF token of the page (<meta name="csrf-token">).
export const USING = ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail",
                      "urn:ietf:params:jmap:submission"];

export class JMAPError extends Error {
  constructor(type, description) {
    super(description ? `${type}: ${description}` : type);
    this.type = type;
  }
}

// A result reference (RFC 8620 §3.7) to the call named `callId` of the same batch.
export function ref(callId, name, path) {
  return { resultOf: callId, name, path };
}

export class Client {
  constructor() {
    this.session = null;
    // The page may name the account and the API (data-account-id, data-api-url on #app), so
    // the first method calls need not wait for the session resource.
    const app = document.getElementById("app");
    this.accountId = (app && app.dataset.accountId) || null;
    this.apiUrl = (app && app.dataset.apiUrl) || null;
    this.csrf = document.querySelector('meta[name="csrf-token"]').content;
  }

  async connect() {
    const reply = await fetch("/.well-known/jmap", { credentials: "same-origin" });
    if (reply.status === 401) { window.location.assign("/login"); throw new JMAPError("unauthorized"); }
    if (!reply.ok) throw new JMAPError("session", `HTTP ${reply.status}`);
    this.session = await reply.json();
    this.accountId = this.session.primaryAccounts["urn:ietf:params:jmap:mail"];
    this.apiUrl = this.session.apiUrl;
    return this.session;
  }

  // calls: [[name, args, id?], ...]; accountId is added to every call's arguments.
  // Resolves to {id: args} of the responses; a method-level error rejects.
  async batch(calls) {
    const methodCalls = calls.map(([name, args, id], i) =>
      [name, { accountId: this.accountId, ...args }, id || `c${i}`]);
    const reply = await fetch(this.apiUrl || this.session.apiUrl, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": this.csrf },
      body: JSON.stringify({ using: USING, methodCalls }),
    });
    if (reply.status === 401) { window.location.assign("/login"); throw new JMAPError("unauthorized"); }
    const body = await reply.json();
    if (!reply.ok) throw new JMAPError(body.type || `HTTP ${reply.status}`, body.detail);
    const out = {};
    for (const [name, args, id] of body.methodResponses) {
      if (name === "error") throw new JMAPError(args.type, args.description);
      // An implicit call (RFC 8621 §7.5 onSuccessUpdateEmail) answers with the same id
      // after its method's own response: the first one is the caller's.
      if (!(id in out)) out[id] = args;
    }
    return out;
  }

  async call(name, args) {
    const out = await this.batch([[name, args, "only"]]);
    return out.only;
  }

  downloadUrl(blobId, name, type) {
    return this.session.downloadUrl
      .replace("{accountId}", encodeURIComponent(this.accountId))
      .replace("{blobId}", encodeURIComponent(blobId))
      .replace("{name}", encodeURIComponent(name || "download"))
      .replace("{type}", encodeURIComponent(type || "application/octet-stream"));
  }

  // Push (RFC 8620 §7.3): onChange(changedTypes) for each StateChange of our account, and
  // onChange(null) after every (re)connection, so the caller catches up with /changes.
  // EventSource reconnects by itself; when the browser gives up (CLOSED) we start anew.
  push(onChange, onStatus) {
    const url = this.session.eventSourceUrl
      .replace("{types}", "*").replace("{closeafter}", "no").replace("{ping}", "30");
    let source = null;
    let retry = 1000;
    const open = () => {
      source = new EventSource(url, { withCredentials: true });
      source.addEventListener("open", () => {
        retry = 1000;
        onStatus && onStatus("live");
        onChange(null);
      });
      source.addEventListener("state", (event) => {
        const data = JSON.parse(event.data);
        const mine = (data.changed || {})[this.accountId];
        if (mine) onChange(mine);
      });
      source.addEventListener("error", () => {
        onStatus && onStatus("reconnecting");
        if (source.readyState === EventSource.CLOSED) {
          setTimeout(open, retry);
          retry = Math.min(retry * 2, 30000);
        }
      });
    };
    open();
    return () => source && source.close();
  }
}
