// Runs before the first paint (a classic script in <head>): the theme the reader chose
// (localStorage), else the system's (prefers-color-scheme). theme.js wires the toggle.
(function () {
  var chosen = null;
  try { chosen = window.localStorage.getItem("mailgosend-theme"); } catch (e) { /* private mode */ }
  var dark = chosen ? chosen === "dark"
    : window.matchMedia("(prefers-color-scheme: dark)").matches;
  document.documentElement.classList.toggle("dark", dark);
})();
