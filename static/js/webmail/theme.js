// Dark and light themes: prefers-color-scheme by default, a toggle stored in localStorage.
const KEY = "mailgosend-theme";

function stored() {
  try { return window.localStorage.getItem(KEY); } catch { return null; }
}

export function isDark() {
  const chosen = stored();
  return chosen ? chosen === "dark" : window.matchMedia("(prefers-color-scheme: dark)").matches;
}

export function apply(dark) {
  document.documentElement.classList.toggle("dark", dark);
  const button = document.getElementById("theme-toggle");
  if (button) button.textContent = dark ? "Light theme" : "Dark theme";
}

export function setup() {
  apply(isDark());
  document.getElementById("theme-toggle").addEventListener("click", () => {
    const dark = !document.documentElement.classList.contains("dark");
    try { window.localStorage.setItem(KEY, dark ? "dark" : "light"); } catch { /* ignore */ }
    apply(dark);
  });
  window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    if (!stored()) apply(isDark());
  });
}
