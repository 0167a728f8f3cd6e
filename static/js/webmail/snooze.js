// Snooze (feature module, see app.js): a "Snooze" menu in the reader's toolbar (the open
// message) and in the list's toolbar (the selection, when several are selected), with
// "Later today", "Tomorrow morning", "Next week" and a date-time picker. The server moves
// the messages into the Snoozed folder (\Snoozed over IMAP) and back, unread, at that time
// (POST /mail/snooze, mail/snooze.py); push brings them back into the list by itself.
// In the Snoozed folder the reader shows when the message wakes and an "Unsnooze" button.
import { menuKey } from "./menu.js";

const BUTTON = "rounded-md px-2 py-1 hover:bg-slate-100 dark:hover:bg-slate-800";
const ITEM = "block w-full rounded px-2 py-1 text-left text-sm hover:bg-slate-100 " +
  "focus:bg-slate-100 dark:hover:bg-slate-800 dark:focus:bg-slate-800";

// The preset times, from `now` (the browser's local time).
export function presets(now = new Date()) {
  const laterToday = new Date(now);
  laterToday.setMinutes(0, 0, 0);
  laterToday.setHours(laterToday.getHours() + 3);
  const tomorrow = new Date(now);
  tomorrow.setDate(tomorrow.getDate() + 1);
  tomorrow.setHours(8, 0, 0, 0);
  const nextWeek = new Date(now);
  nextWeek.setDate(nextWeek.getDate() + (((8 - nextWeek.getDay()) % 7) || 7));  // next Monday
  nextWeek.setHours(8, 0, 0, 0);
  return [["Later today", laterToday], ["Tomorrow morning", tomorrow], ["Next week", nextWeek]];
}

function whenText(date) {
  return date.toLocaleString([], { weekday: "short", month: "short", day: "numeric",
                                   hour: "2-digit", minute: "2-digit" });
}

// <input type="datetime-local"> value of a Date, in local time.
function localValue(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

async function post(api, path, ids, until) {
  const form = new FormData();
  for (const id of ids) form.append("emailId", id);
  if (until) form.append("until", until.toISOString());
  const reply = await fetch(path, { method: "POST", credentials: "same-origin", body: form,
                                    headers: { "X-CSRF-Token": api.client.csrf } });
  let body = {};
  try { body = await reply.json(); } catch (error) { body = {}; }
  if (!reply.ok) throw new Error(body.error || `HTTP ${reply.status}`);
  return body;
}

function make(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text) element.textContent = text;
  return element;
}

// A "Snooze" button with its menu; `ids()` gives the messages at click time.
function snoozeMenu(api, ids, say, label) {
  const wrap = make("div", "relative inline-block");
  const button = make("button", BUTTON, "Snooze");
  button.type = "button";
  button.setAttribute("aria-haspopup", "menu");
  button.setAttribute("aria-expanded", "false");
  if (label) button.setAttribute("aria-label", label);
  const menu = make("div", "absolute right-0 z-20 mt-1 hidden w-64 rounded-md border " +
    "border-slate-200 bg-white p-1 shadow-lg dark:border-slate-700 dark:bg-slate-900");
  menu.setAttribute("role", "menu");
  menu.setAttribute("aria-label", "Snooze until");
  const picker = make("form", "hidden space-y-1 p-1");
  const input = make("input", "w-full rounded border border-slate-300 px-1 py-0.5 text-sm " +
    "dark:border-slate-600 dark:bg-slate-800");
  input.type = "datetime-local";
  input.required = true;
  input.setAttribute("aria-label", "Snooze until");
  const confirm = make("button", "rounded-md bg-sky-600 px-2 py-0.5 text-sm text-white " +
    "hover:bg-sky-700", "Snooze until then");
  confirm.type = "submit";
  picker.append(input, confirm);

  const close = () => {
    menu.classList.add("hidden");
    picker.classList.add("hidden");
    button.setAttribute("aria-expanded", "false");
  };
  const choose = async (until) => {
    close();
    const chosen = ids();
    if (!chosen.length) return;
    try {
      const done = await post(api, "/mail/snooze", chosen, until);
      say(`Snoozed until ${whenText(until)}`);
      if (api.reader.email && chosen.includes(api.reader.email.id)) api.reader.close();
      api.list.selected = new Set();
      api.list.selectionChanged();
      await api.list.refresh();
      return done;
    } catch (error) {
      say(`Could not snooze: ${error.message}`, true);
    }
  };
  const open = () => {
    const items = presets().map(([name, when]) => {
      const item = make("button", ITEM);
      item.type = "button";
      item.setAttribute("role", "menuitem");
      item.append(make("span", "font-medium", name), make("span",
        "ml-2 text-slate-500 dark:text-slate-400", whenText(when)));
      item.addEventListener("click", () => choose(when));
      return item;
    });
    const pick = make("button", ITEM, "Pick a date and time…");
    pick.type = "button";
    pick.setAttribute("role", "menuitem");
    pick.addEventListener("click", () => {
      picker.classList.remove("hidden");
      const soon = new Date(Date.now() + 3600 * 1000);
      input.min = localValue(new Date());
      if (!input.value) input.value = localValue(soon);
      input.focus();
    });
    menu.replaceChildren(...items, pick, picker);
    menu.classList.remove("hidden");
    button.setAttribute("aria-expanded", "true");
    items[0].focus();
  };
  picker.addEventListener("submit", (event) => {
    event.preventDefault();
    const until = new Date(input.value);   // local time
    if (Number.isNaN(until.getTime())) { say("Could not snooze: until: pick a date and time", true); return; }
    choose(until);
  });
  button.addEventListener("click", () => (menu.classList.contains("hidden") ? open() : close()));
  wrap.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { close(); button.focus(); }
    menuKey(menu, event);
  });
  document.addEventListener("click", (event) => { if (!wrap.contains(event.target)) close(); });
  wrap.append(button, menu);
  return wrap;
}

export function install(api) {
  const status = make("span", "px-1 text-sm text-slate-600 dark:text-slate-300");
  status.setAttribute("role", "status");
  const say = (text, error) => {
    status.textContent = text;
    status.classList.toggle("text-red-700", Boolean(error));
    clearTimeout(say.timer);
    say.timer = setTimeout(() => { status.textContent = ""; }, 8000);
  };

  // The open message.
  const reader = snoozeMenu(api, () => (api.reader.email ? [api.reader.email.id] : []), say);
  const waking = make("span", "px-1 text-sm text-slate-600 dark:text-slate-300");
  const unsnooze = make("button", `${BUTTON} hidden`, "Unsnooze");
  unsnooze.type = "button";
  unsnooze.addEventListener("click", async () => {
    const email = api.reader.email;
    if (!email) return;
    try {
      await post(api, "/mail/unsnooze", [email.id]);
      say("Back where it was");
      api.reader.close();
      await api.list.refresh();
    } catch (error) {
      say(`Could not unsnooze: ${error.message}`, true);
    }
  });
  api.slots.reader.append(reader, unsnooze, waking);

  // The selection (two or more: one is the open message, snoozed from the reader).
  const selection = snoozeMenu(api, () => [...api.list.selected], say, "Snooze selected");
  selection.classList.add("hidden");
  api.slots.list.append(selection, status);
  api.events.addEventListener("selection", (event) => {
    selection.classList.toggle("hidden", event.detail.length < 2);
  });

  // In the Snoozed folder: when it wakes, and a way to bring it back now.
  api.events.addEventListener("open", async (event) => {
    const box = api.folders.currentBox;
    const inSnoozed = Boolean(box && box.role === "snoozed");
    unsnooze.classList.toggle("hidden", !inSnoozed);
    waking.textContent = "";
    if (!inSnoozed) return;
    const reply = await fetch("/mail/snoozed", { credentials: "same-origin" });
    if (!reply.ok) return;
    const found = (await reply.json()).snoozed.find((s) => s.emailId === event.detail);
    if (found && api.reader.wanted === event.detail) {
      waking.textContent = `Wakes ${whenText(new Date(found.until))}`;
    }
  });
}
