// Live tail of the admin Logs page: server-sent events from /admin/logs/stream with the
// page's level and text filters; each line is appended to the table (text only, never HTML).

const table = document.getElementById("log-lines");
const toggle = document.getElementById("live");
const status = document.getElementById("live-status");
let source = null;

function cell(text, className) {
  const td = document.createElement("td");
  td.className = className;
  td.textContent = text;
  return td;
}

function append(line) {
  const body = table.tBodies[0];
  body.querySelector("tr.empty")?.remove();
  const row = document.createElement("tr");
  row.className = "border-t border-slate-200 dark:border-slate-800";
  row.append(cell(line.at, "whitespace-nowrap px-2 py-1"), cell(line.level, "px-2 py-1"),
             cell(line.namespace, "px-2 py-1"), cell(line.text, "px-2 py-1 break-all"));
  body.append(row);
  while (body.rows.length > 2000) body.rows[0].remove();
  row.scrollIntoView({ block: "nearest" });
}

function start() {
  const params = new URLSearchParams({ level: table.dataset.level, q: table.dataset.q });
  source = new EventSource(`${table.dataset.stream}?${params}`);
  source.onopen = () => { status.textContent = "Live tail on: new lines appear below."; };
  source.onmessage = (event) => append(JSON.parse(event.data));
  source.onerror = () => { status.textContent = "Live tail interrupted; reconnecting…"; };
}

function stop() {
  source?.close();
  source = null;
  status.textContent = "Live tail off.";
}

if (table && toggle) toggle.addEventListener("change", () => (toggle.checked ? start() : stop()));
