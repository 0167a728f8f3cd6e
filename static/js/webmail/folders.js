// The folder tree: special-use folders first (in this order), then the others by
// sortOrder and name, children under their parent; unread counts from Mailbox/get.
const ROLE_ORDER = ["inbox", "snoozed", "drafts", "sent", "archive", "junk", "trash"];
const PROPERTIES = ["id", "name", "parentId", "role", "sortOrder", "totalEmails",
                    "unreadEmails", "totalThreads", "unreadThreads"];

// The name shown: IMAP's INBOX is "Inbox" like every other client shows it.
export function displayName(box) {
  return box.role === "inbox" ? "Inbox" : box.name;
}

export class Folders {
  constructor(client, element, onChoose) {
    this.client = client;
    this.element = element;
    this.onChoose = onChoose;
    this.boxes = new Map();
    this.current = null;
    this.state = null;
  }

  // Mailbox/get of every folder, as a call to put into a batch (apply() takes its answer).
  static call() {
    return ["Mailbox/get", { ids: null, properties: PROPERTIES }];
  }

  async load() {
    this.apply(await this.client.call(...Folders.call()));
  }

  apply(got) {
    this.state = got.state;
    this.boxes = new Map(got.list.map((m) => [m.id, m]));
    if (!this.current || !this.boxes.has(this.current)) {
      const inbox = got.list.find((m) => m.role === "inbox") || got.list[0];
      this.current = inbox ? inbox.id : null;
    }
    this.render();
  }

  ordered() {
    const rank = (m) => {
      const i = ROLE_ORDER.indexOf(m.role);
      return i < 0 ? ROLE_ORDER.length : i;
    };
    const compare = (a, b) => rank(a) - rank(b) || (a.sortOrder || 0) - (b.sortOrder || 0)
      || a.name.localeCompare(b.name);
    const children = new Map();
    for (const box of this.boxes.values()) {
      const parent = box.parentId && this.boxes.has(box.parentId) ? box.parentId : null;
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(box);
    }
    const out = [];
    const walk = (parent, depth) => {
      for (const box of (children.get(parent) || []).sort(compare)) {
        out.push([box, depth]);
        walk(box.id, depth + 1);
      }
    };
    walk(null, 0);
    return out;
  }

  render() {
    const items = [];
    for (const [box, depth] of this.ordered()) {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.id = box.id;
      button.className = "flex w-full items-center gap-2 rounded-md px-2 py-1 text-left text-sm " +
        "hover:bg-slate-100 dark:hover:bg-slate-800 aria-[current=true]:bg-sky-100 " +
        "aria-[current=true]:font-semibold dark:aria-[current=true]:bg-sky-900";
      button.style.paddingLeft = `${0.5 + depth * 0.9}rem`;
      if (box.id === this.current) button.setAttribute("aria-current", "true");
      const name = document.createElement("span");
      name.className = "truncate";
      name.textContent = displayName(box);
      button.append(name);
      if (box.unreadEmails > 0) {
        const count = document.createElement("span");
        count.className = "ml-auto rounded-full bg-sky-600 px-1.5 text-xs font-semibold text-white";
        count.textContent = String(box.unreadEmails);
        count.setAttribute("aria-label", `${box.unreadEmails} unread`);
        button.append(count);
      }
      button.addEventListener("click", () => this.choose(box.id));
      li.append(button);
      items.push(li);
    }
    this.element.replaceChildren(...items);
  }

  choose(id) {
    this.current = id;
    this.render();
    this.onChoose(this.boxes.get(id));
  }

  get currentBox() { return this.boxes.get(this.current); }

  byRole(role) {
    for (const box of this.boxes.values()) if (box.role === role) return box;
    return null;
  }
}
