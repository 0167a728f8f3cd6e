// A "Contacts" link in the mail page's header, to the contacts page (/mail/contacts).
export function install(api) {
  const link = document.createElement("a");
  link.href = "/mail/contacts";
  link.textContent = "Contacts";
  link.className = "rounded-md px-2 py-1 text-sm hover:bg-slate-100 dark:hover:bg-slate-800";
  api.slots.header.append(link);
}
