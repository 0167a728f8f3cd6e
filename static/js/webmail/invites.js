// Invitations in the reading pane: when the opened message carries a text/calendar part
// (an iTIP REQUEST, RFC 5546), a bar under the headers names the event and offers "Add to
// calendar"; one click imports it into the default calendar through
// POST /mail/api/calendar/import (web/webmail_calendar.py), or updates the event with the
// same UID when the invitation's SEQUENCE is newer. Replies to the organiser (RSVP) are not
// sent from here.
const STATES = {
  new: ["Add to calendar", ""],
  updated: ["Update in calendar", "An older version of this event is in your calendar."],
  added: [null, "This event is in your calendar."],
};

function when(text) {
  if (!text) return "";
  if (text.length === 10) {
    const [y, m, d] = text.split("-").map(Number);
    return new Date(y, m - 1, d).toLocaleDateString();
  }
  return new Date(text).toLocaleString();
}

export function install(api) {
  const bar = document.createElement("div");
  bar.id = "invite-bar";
  bar.setAttribute("role", "region");
  bar.setAttribute("aria-label", "Invitation");
  bar.className = "hidden flex-wrap items-center gap-2 rounded bg-sky-100 px-2 py-1 text-sm text-sky-950 dark:bg-sky-900 dark:text-sky-50";
  const text = document.createElement("span");
  const note = document.createElement("span");
  note.setAttribute("role", "status");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "rounded-md bg-sky-200 px-2 py-0.5 font-medium hover:bg-sky-300 dark:bg-sky-800 dark:hover:bg-sky-700";
  bar.append(text, button, note);
  const anchor = document.getElementById("remote-bar");
  if (anchor) anchor.after(bar); else return;

  let current = null;   // {emailId, invite}

  function hide() {
    bar.classList.add("hidden");
    bar.classList.remove("flex");
  }

  function render(emailId, invite) {
    current = { emailId, invite };
    const [label, message] = STATES[invite.state] || STATES.new;
    text.textContent = `Invitation: ${invite.title || "(no title)"}${invite.start ? ", " + when(invite.start) : ""}`;
    button.hidden = !label;
    button.disabled = false;
    if (label) button.textContent = label;
    note.textContent = message;
    bar.classList.remove("hidden");
    bar.classList.add("flex");
  }

  async function show(emailId) {
    current = null;
    hide();
    let found;
    try {
      const reply = await fetch(`/mail/api/calendar/invitations/${encodeURIComponent(emailId)}`,
                                { credentials: "same-origin" });
      if (!reply.ok) return;
      found = (await reply.json()).invitations || [];
    } catch {
      return;
    }
    // Another message may have been opened meanwhile: the last one asked for wins.
    if (api.reader.wanted !== emailId || !found.length) return;
    render(emailId, found[0]);
  }

  button.addEventListener("click", async () => {
    if (!current) return;
    const { emailId, invite } = current;
    button.disabled = true;
    note.textContent = "Adding…";
    try {
      const reply = await fetch("/mail/api/calendar/import", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": api.client.csrf },
        body: JSON.stringify({ emailId, partId: invite.partId }),
      });
      const data = await reply.json().catch(() => ({}));
      if (!reply.ok) throw new Error(data.error || `HTTP ${reply.status}`);
      render(emailId, { ...invite, state: "added", eventId: data.eventId });
      note.textContent = data.status === "updated" ? "Updated in your calendar."
        : data.status === "unchanged" ? "This event is in your calendar." : "Added to your calendar.";
    } catch (error) {
      button.disabled = false;
      note.textContent = `Could not add it: ${error.message}`;
    }
  });

  api.events.addEventListener("open", (e) => { show(e.detail); });
}
