// "Copy" buttons of the admin panel (DKIM and DNS records): each button[data-copy] copies the
// text of the element it names to the clipboard and says so in the page's status line.
// Without JavaScript the buttons stay hidden and the records can be selected by hand.

const status = document.getElementById("copy-status");

for (const button of document.querySelectorAll("button[data-copy]")) {
  button.hidden = false;
  button.addEventListener("click", async () => {
    const source = document.getElementById(button.dataset.copy);
    try {
      await navigator.clipboard.writeText(source.value ?? source.textContent);
      status.textContent = `Copied ${button.dataset.what}.`;
    } catch {
      source.select?.();
      status.textContent = "Copying is not allowed here: the record is selected, copy it with Ctrl+C.";
    }
  });
}
