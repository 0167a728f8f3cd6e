// Keyboard movement inside a WAI-ARIA menu (role=menu with role=menuitem children):
// ArrowDown/ArrowUp wrap around, Home/End jump. One rule for every menu of the webmail
// (move to folder, snooze, templates).

// Moves the focus for `event` inside `menu`; true when the key was one of ours (the
// caller then leaves it alone: Escape and Tab stay the caller's).
export function menuKey(menu, event) {
  const items = [...menu.querySelectorAll("[role=menuitem]")];
  const at = items.indexOf(document.activeElement);
  const go = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: items.length - 1 }[event.key];
  if (go === undefined || !items.length || menu.classList.contains("hidden")) return false;
  event.preventDefault();
  items[(go + items.length) % items.length].focus();
  return true;
}
