// Address autocomplete for every input[data-addresses] (compose marks To, Cc and Bcc so; the
// contacts page its email fields with data-addresses="single"), by event delegation on the
// document, so inputs made later need nothing.  The ARIA 1.2 combobox pattern: the input is
// a combobox controlling one listbox of options; up/down move, Enter or Tab picks, Escape
// closes; the focus stays in the input (aria-activedescendant).
//
// Suggestions come from GET /mail/api/suggest?q= (web/webmail_contacts.py): address-book
// matches first, then addresses used before.  In a list field the part after the last comma
// is what is completed, and a pick becomes `Name <address>, `; a single field gets the bare
// address.
const WAIT_MS = 120;
let listbox = null;
let active = null;     // the input the listbox belongs to
let options = [];      // the suggestions shown
let index = -1;        // the highlighted one
let asked = 0;         // requests sent: a late answer to an older one is dropped
let timer = null;
let serial = 0;

function ensureListbox() {
  if (listbox) return listbox;
  listbox = document.createElement("ul");
  listbox.id = "address-suggestions";
  listbox.setAttribute("role", "listbox");
  listbox.setAttribute("aria-label", "Address suggestions");
  listbox.className = "fixed z-50 hidden max-h-64 overflow-y-auto rounded-md border border-slate-300 bg-white py-1 text-sm shadow-lg dark:border-slate-700 dark:bg-slate-900";
  // Keep the focus in the input when an option is clicked.
  listbox.addEventListener("mousedown", (e) => e.preventDefault());
  listbox.addEventListener("click", (e) => {
    const option = e.target.closest("[role=option]");
    if (option) pick(Number(option.dataset.index));
  });
  document.body.append(listbox);
  return listbox;
}

export function prepare(input) {
  if (input.getAttribute("role") === "combobox") return;
  input.setAttribute("role", "combobox");
  input.setAttribute("aria-autocomplete", "list");
  input.setAttribute("aria-expanded", "false");
  input.setAttribute("aria-controls", "address-suggestions");
  input.setAttribute("autocomplete", "off");
}

function single(input) {
  return input.dataset.addresses === "single";
}

// The part being typed: after the last separator (a comma outside quotes) before the caret.
function token(input) {
  if (single(input)) return { start: 0, end: input.value.length, text: input.value };
  const value = input.value;
  const caret = input.selectionStart ?? value.length;
  let start = 0;
  let quoted = false;
  for (let i = 0; i < caret; i++) {
    if (value[i] === '"') quoted = !quoted;
    else if ((value[i] === "," || value[i] === ";") && !quoted) start = i + 1;
  }
  let end = value.indexOf(",", caret);
  if (end < 0) end = value.length;
  return { start, end, text: value.slice(start, caret) };
}

function formatted(suggestion) {
  const name = (suggestion.name || "").trim();
  if (!name || name.toLowerCase() === suggestion.email.toLowerCase()) return suggestion.email;
  // RFC 5322 §3.2.4: a display name with specials goes in quotes.
  const quoted = /[()<>[\]:;@\\,."]/.test(name) ? `"${name.replace(/["\\]/g, "\\$&")}"` : name;
  return `${quoted} <${suggestion.email}>`;
}

function close() {
  if (listbox) listbox.classList.add("hidden");
  if (active) {
    active.setAttribute("aria-expanded", "false");
    active.removeAttribute("aria-activedescendant");
  }
  options = [];
  index = -1;
}

function place(input) {
  // Fixed to the input's box: the input may sit in any scrolling container.
  const box = input.getBoundingClientRect();
  listbox.style.left = `${Math.round(box.left)}px`;
  listbox.style.top = `${Math.round(box.bottom + 2)}px`;
  listbox.style.minWidth = `${Math.round(box.width)}px`;
}

function highlight(next) {
  index = next;
  for (const [i, li] of [...listbox.children].entries()) {
    const on = i === index;
    li.setAttribute("aria-selected", on ? "true" : "false");
    li.classList.toggle("bg-sky-100", on);
    li.classList.toggle("dark:bg-sky-900", on);
    if (on) li.scrollIntoView({ block: "nearest" });
  }
  if (index >= 0) active.setAttribute("aria-activedescendant", listbox.children[index].id);
  else active.removeAttribute("aria-activedescendant");
}

function show(input, suggestions) {
  ensureListbox();
  options = suggestions;
  if (!suggestions.length || document.activeElement !== input) { close(); return; }
  // A modal dialog (compose) is in the top layer, and the rest of the page inert under it:
  // the listbox goes inside the dialog of its input.
  const host = input.closest("dialog") || document.body;
  if (listbox.parentElement !== host) host.append(listbox);
  serial += 1;
  listbox.replaceChildren(...suggestions.map((s, i) => {
    const li = document.createElement("li");
    li.id = `address-suggestion-${serial}-${i}`;
    li.setAttribute("role", "option");
    li.setAttribute("aria-selected", "false");
    li.dataset.index = String(i);
    li.className = "cursor-pointer px-3 py-1 hover:bg-slate-100 dark:hover:bg-slate-800";
    li.textContent = formatted(s);
    return li;
  }));
  place(input);
  listbox.classList.remove("hidden");
  input.setAttribute("aria-expanded", "true");
  highlight(0);
}

async function ask(input) {
  const { text } = token(input);
  const query = text.trim();
  const mine = ++asked;
  if (!query) { close(); return; }
  try {
    const response = await fetch(`/mail/api/suggest?q=${encodeURIComponent(query)}`,
                                 { credentials: "same-origin" });
    if (!response.ok || mine !== asked) return;
    const answer = await response.json();
    if (mine === asked && active === input) show(input, answer.suggestions || []);
  } catch {
    /* offline: no suggestions */
  }
}

function pick(i) {
  const input = active;
  const suggestion = options[i];
  if (!input || !suggestion) return;
  const { start, end } = token(input);
  const value = input.value;
  if (single(input)) {
    input.value = suggestion.email;
  } else {
    const before = value.slice(0, start).trimEnd();
    const after = value.slice(end).replace(/^\s*,?\s*/, "");
    const inserted = `${before ? before + " " : ""}${formatted(suggestion)}, `;
    input.value = inserted + after;
    input.setSelectionRange(inserted.length, inserted.length);
  }
  close();
  asked += 1;
  // Others listening (compose's autosave) learn of the change; our own listener skips it.
  input.dispatchEvent(new CustomEvent("input", { bubbles: true, detail: { autocomplete: true } }));
}

function onInput(e) {
  const input = e.target;
  if (!(input instanceof HTMLInputElement) || !input.matches("input[data-addresses]")) return;
  if (e.detail && e.detail.autocomplete) return;
  prepare(input);
  active = input;
  clearTimeout(timer);
  timer = setTimeout(() => ask(input), WAIT_MS);
}

function onKeydown(e) {
  const input = e.target;
  if (input !== active || !listbox || listbox.classList.contains("hidden") || !options.length) return;
  if (e.key === "ArrowDown") {
    e.preventDefault();
    highlight((index + 1) % options.length);
  } else if (e.key === "ArrowUp") {
    e.preventDefault();
    highlight((index - 1 + options.length) % options.length);
  } else if (e.key === "Enter" || (e.key === "Tab" && !e.shiftKey && index >= 0)) {
    if (index < 0) return;
    e.preventDefault();
    e.stopPropagation();
    pick(index);
  } else if (e.key === "Escape") {
    e.preventDefault();
    e.stopPropagation();
    close();
  }
}

let installed = false;

export function install(api) {
  if (installed) return;
  installed = true;
  // Compose's address fields are comboboxes from the start (assistive technology announces
  // them so); other inputs become one when first focused.
  if (api && api.events) {
    api.events.addEventListener("compose", (e) => {
      for (const input of Object.values((e.detail && e.detail.fields) || {})) {
        if (input instanceof HTMLInputElement && input.matches("input[data-addresses]")) prepare(input);
      }
    });
  }
  document.addEventListener("focusin", (e) => {
    if (e.target instanceof HTMLInputElement && e.target.matches("input[data-addresses]")) prepare(e.target);
  });
  document.addEventListener("input", onInput);
  document.addEventListener("keydown", onKeydown, true);
  document.addEventListener("focusout", (e) => { if (e.target === active) close(); });
  window.addEventListener("resize", () => close());
}
