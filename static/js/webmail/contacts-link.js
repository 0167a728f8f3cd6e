// Links to the contacts page (/mail/contacts): in the header on wider screens, and under the
// folders on a phone (the header has no room there; the folder pane opens from "Folders").
export function install(api) {
  const link = (extra) => {
    const a = document.createElement("a");
    a.href = "/mail/contacts";
    a.textContent = "Contacts";
    a.className = `rounded-md px-2 py-1 text-sm hover:bg-slate-100 dark:hover:bg-slate-800 ${extra}`;
    return a;
  };
  api.slots.header.append(link("hidden md:inline-block"));
  const pane = document.getElementById("folders-pane");
  if (pane) pane.append(link("mt-2 block border-t border-slate-200 pt-2 md:hidden dark:border-slate-800"));
}
