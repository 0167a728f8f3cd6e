// The webmail's calendar page (/mail/calendar, web/webmail_calendar.py): month, week and
// day views drawn by the vendored EventCalendar (static/vendor/event-calendar, a classic
// script defining the global EventCalendar), events from /mail/api/calendar/events
// (recurring events expanded by the server, one entry per occurrence with its recurrenceId),
// and a <dialog> form to create, edit and delete events: the whole series, or one
// occurrence as an exception. Times are entered in the browser's time zone, sent as wall
// clock time with that zone's name (so a weekly 09:00 stays 09:00 across summer time).
//
// CSP: EventCalendar builds its DOM from templates without style attributes and sets
// styles through the CSSOM (element.style), which style-src 'self' allows.
import * as theme from "./theme.js";

const $ = (id) => document.getElementById(id);
const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const ZONE = (Intl.DateTimeFormat().resolvedOptions().timeZone) || "UTC";
const DAY = 86400000;
const VIEWS = ["dayGridMonth", "timeGridWeek", "timeGridDay"];
// The API's field names -> the form's inputs.
const FIELDS = { title: "event-title", calendarId: "event-calendar", allDay: "event-all-day",
  start: "event-start", end: "event-end", location: "event-location",
  description: "event-description", repeat: "event-repeat", "repeat.freq": "event-repeat",
  "repeat.until": "event-until", "repeat.count": "event-count" };

export class ApiError extends Error {
  constructor(message, field, status) {
    super(message);
    this.field = field;
    this.status = status;
  }
}

// One JSON request; writes carry the page's CSRF token. A refusal throws ApiError with
// the field the server named.
export async function api(method, path, body) {
  const options = { method, credentials: "same-origin", headers: {} };
  if (method !== "GET") options.headers["X-CSRF-Token"] = CSRF;
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const reply = await fetch(path, options);
  if (reply.status === 401) { window.location.assign("/login"); throw new ApiError("sign in", null, 401); }
  const data = await reply.json().catch(() => ({}));
  if (!reply.ok) throw new ApiError(data.error || `HTTP ${reply.status}`, data.field, reply.status);
  return data;
}

const pad = (n) => String(n).padStart(2, "0");
const dateText = (d) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
const localText = (d) => `${dateText(d)}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
// "2027-01-10" as a local midnight (new Date("2027-01-10") would be UTC midnight).
const localDate = (text) => { const [y, m, d] = text.split("-").map(Number); return new Date(y, m - 1, d); };

class CalendarPage {
  constructor() {
    this.calendars = [];
    this.editing = null;     // the occurrence (server JSON) the form edits, or null
  }

  async start() {
    theme.setup();
    this.followTheme();
    this.calendars = (await api("GET", "/mail/api/calendar/calendars")).calendars;
    $("event-calendar").replaceChildren(...this.calendars.map((c) => {
      const option = document.createElement("option");
      option.value = c.id;
      option.textContent = c.name;
      return option;
    }));
    // ?date=2027-01-14&view=timeGridWeek opens there (a bookmark, a link from a message).
    const params = new URLSearchParams(window.location.search);
    const start = /^\d{4}-\d{2}-\d{2}$/.test(params.get("date") || "") ? localDate(params.get("date")) : new Date();
    const view = VIEWS.includes(params.get("view")) ? params.get("view") : "dayGridMonth";
    this.ec = EventCalendar.create($("calendar"), {
      view,
      date: start,
      height: "100%",
      headerToolbar: { start: "prev,next today", center: "title", end: "dayGridMonth,timeGridWeek,timeGridDay" },
      buttonText: (text) => ({ ...text, today: "Today", dayGridMonth: "Month", timeGridWeek: "Week", timeGridDay: "Day" }),
      eventSources: [{ events: (info) => this.load(info) }],
      eventClick: (info) => this.edit(info.event.extendedProps.occurrence),
      dateClick: (info) => this.create(info.date, info.allDay),
      loading: (busy) => {
        if (busy) $("status").textContent = "Loading…";
        else if ($("status").textContent === "Loading…") $("status").textContent = "";
      },
    });
    $("new-event").addEventListener("click", () => this.create(null, false));
    $("event-form").addEventListener("submit", (e) => { e.preventDefault(); this.save(); });
    $("event-cancel").addEventListener("click", () => $("event-dialog").close());
    $("event-delete").addEventListener("click", () => this.remove());
    $("event-all-day").addEventListener("change", () => this.allDayChanged());
    $("event-repeat").addEventListener("change", () => this.repeatChanged());
    document.documentElement.dataset.ready = "1";
  }

  followTheme() {
    const apply = () => $("calendar").classList.toggle("ec-dark", document.documentElement.classList.contains("dark"));
    apply();
    new MutationObserver(apply).observe(document.documentElement, { attributes: true, attributeFilter: ["class"] });
  }

  async load(info) {
    const query = new URLSearchParams({ start: info.start.toISOString(), end: info.end.toISOString() });
    const found = await api("GET", `/mail/api/calendar/events?${query}`);
    const colors = Object.fromEntries(this.calendars.map((c) => [c.id, c.color]));
    return found.events.map((e) => {
      const event = {
        id: e.id, title: e.title, allDay: e.allDay,
        start: e.allDay ? e.start : new Date(e.start),
        end: e.allDay ? e.end : new Date(e.end),
        extendedProps: { occurrence: e },
      };
      const color = colors[e.calendarId];
      if (color && /^#[0-9a-fA-F]{6}/.test(color)) event.backgroundColor = color.slice(0, 7);
      return event;
    });
  }

  // --- the form -----------------------------------------------------------------------
  // The server's refusal in the form's alert; the field it names is marked and focused.
  showError(message, field) {
    const box = $("event-error");
    box.textContent = message || "";
    box.classList.toggle("hidden", !message);
    for (const input of $("event-form").querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
    const input = field && $(FIELDS[field]);
    if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
  }

  setAllDay(allDay) {
    $("event-all-day").checked = allDay;
    for (const id of ["event-start", "event-end"]) $(id).type = allDay ? "date" : "datetime-local";
  }

  fill({ title = "", calendarId, allDay = false, start, end, location = "", description = "", repeat = null }) {
    $("event-title").value = title;
    if (calendarId) $("event-calendar").value = calendarId;
    this.setAllDay(allDay);
    if (allDay) {
      $("event-start").value = dateText(start);
      $("event-end").value = dateText(new Date(end.getTime() - DAY));   // shown inclusive
    } else {
      $("event-start").value = localText(start);
      $("event-end").value = localText(end);
    }
    $("event-location").value = location;
    $("event-description").value = description;
    const custom = repeat && (repeat.custom || !repeat.freq);
    $("event-repeat").value = !repeat ? "" : custom ? "custom" : repeat.freq;
    $("event-repeat").querySelector('option[value="custom"]').hidden = !custom;
    $("event-until").value = repeat && repeat.until ? repeat.until : "";
    $("event-count").value = repeat && repeat.count ? String(repeat.count) : "";
    this.repeatChanged();
  }

  create(date, allDay) {
    this.editing = null;
    let start = date ? new Date(date) : new Date();
    if (!date) { start.setMinutes(0, 0, 0); start = new Date(start.getTime() + 3600000); }
    if (allDay) start = new Date(start.getFullYear(), start.getMonth(), start.getDate());
    const end = new Date(start.getTime() + (allDay ? DAY : 3600000));
    this.fill({ start, end, allDay: Boolean(allDay),
                calendarId: (this.calendars.find((c) => c.default) || {}).id });
    $("event-dialog-title").textContent = "New event";
    $("event-delete").classList.add("hidden");
    $("event-scope").classList.add("hidden");
    $("event-calendar").disabled = false;
    this.open();
  }

  edit(occurrence) {
    this.editing = occurrence;
    const allDay = occurrence.allDay;
    this.fill({ title: occurrence.title, calendarId: occurrence.calendarId, allDay,
                start: allDay ? localDate(occurrence.start) : new Date(occurrence.start),
                end: allDay ? localDate(occurrence.end) : new Date(occurrence.end),
                location: occurrence.location, description: occurrence.description,
                repeat: occurrence.repeat });
    $("event-dialog-title").textContent = "Edit event";
    $("event-delete").classList.remove("hidden");
    $("event-scope").classList.toggle("hidden", !occurrence.recurrenceId);
    const series = document.querySelector('input[name="scope"][value="series"]');
    series.checked = true;
    this.open();
  }

  open() {
    this.showError("");
    const dialog = $("event-dialog");
    if (!dialog.open) dialog.showModal();
    $("event-title").focus();
  }

  allDayChanged() {
    const allDay = $("event-all-day").checked;
    const start = $("event-start").value;
    const end = $("event-end").value;
    this.setAllDay(allDay);
    if (allDay) {
      $("event-start").value = start.slice(0, 10);
      $("event-end").value = (end || start).slice(0, 10);
    } else {
      $("event-start").value = start ? `${start.slice(0, 10)}T09:00` : "";
      $("event-end").value = end ? `${end.slice(0, 10)}T10:00` : "";
    }
  }

  repeatChanged() {
    const none = $("event-repeat").value === "" || $("event-repeat").value === "custom";
    $("event-until").disabled = none;
    $("event-count").disabled = none;
  }

  scope() {
    const chosen = document.querySelector('input[name="scope"]:checked');
    return this.editing && this.editing.recurrenceId && chosen ? chosen.value : "series";
  }

  // The form as the API's JSON: wall-clock times in the browser's zone; an all-day end
  // is inclusive in the form, exclusive in iCalendar.
  body() {
    const allDay = $("event-all-day").checked;
    let end = $("event-end").value;
    if (allDay && end) end = dateText(new Date(localDate(end).getTime() + DAY));
    const body = {
      title: $("event-title").value, calendarId: $("event-calendar").value, allDay,
      start: $("event-start").value, end, timeZone: ZONE,
      location: $("event-location").value, description: $("event-description").value,
    };
    const freq = $("event-repeat").value;
    const scope = this.scope();
    // The times shown are this occurrence's: the server moves the series by as much.
    if (this.editing && this.editing.recurrenceId) body.recurrenceId = this.editing.recurrenceId;
    if (scope === "occurrence") {
      body.scope = "occurrence";
    } else if (freq !== "custom") {    // a custom rule is kept when the field is left out
      body.repeat = freq ? { freq, until: $("event-until").value || null,
                             count: $("event-count").value ? Number($("event-count").value) : null } : null;
    }
    if (this.editing) body.etag = this.editing.etag;
    return body;
  }

  async save() {
    const body = this.body();
    try {
      if (this.editing) {
        await api("PUT", `/mail/api/calendar/events/${encodeURIComponent(this.editing.eventId)}`, body);
      } else {
        await api("POST", "/mail/api/calendar/events", body);
      }
    } catch (error) {
      this.showError(error.message, error.field);
      return;
    }
    $("event-dialog").close();
    this.announce(this.editing ? "Event saved." : "Event created.");
    this.ec.refetchEvents();
  }

  async remove() {
    const occurrence = this.editing;
    if (!occurrence) return;
    const query = new URLSearchParams({ etag: occurrence.etag });
    if (this.scope() === "occurrence") query.set("recurrenceId", occurrence.recurrenceId);
    try {
      await api("DELETE", `/mail/api/calendar/events/${encodeURIComponent(occurrence.eventId)}?${query}`);
    } catch (error) {
      this.showError(error.message);
      return;
    }
    $("event-dialog").close();
    this.announce("Event deleted.");
    this.ec.refetchEvents();
  }

  announce(text) {
    $("status").textContent = text;
  }
}

if ($("calendar-app")) {
  new CalendarPage().start().catch((error) => {
    $("status").textContent = `The calendar could not be loaded: ${error.message}`;
  });
}
