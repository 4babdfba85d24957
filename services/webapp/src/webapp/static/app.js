// Live updates from /api/v1/users/events, and a confirm() before a delete; the pages work without
// this file (the server then asks for the confirmation on a page of its own).
"use strict";

(function () {
  const main = document.querySelector("main");
  if (!main) return;

  // A delete form asks first; once confirmed it says so, and the server deletes at once.
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (submit) => {
      if (!window.confirm(form.dataset.confirm)) {
        submit.preventDefault();
        return;
      }
      form.elements.namedItem("confirmed").value = "yes";
    });
  }

  if (!window.EventSource) return;
  const live = document.getElementById("live");
  const RETRY_MS = 3000;
  let connectedBefore = false;

  // EventSource retries by itself after a dropped stream, but gives up for good when a reconnect
  // is answered with an error status (503 while the users service is down): start anew then.
  // Changes made while the stream was away never come as events: a reconnect reloads the list.
  function connect() {
    const source = new EventSource("/api/v1/users/events");
    source.addEventListener("open", () => {
      if (live) live.hidden = false;
      if (connectedBefore && main.dataset.page === "list") refreshList();
      connectedBefore = true;
    });
    source.addEventListener("error", () => {
      if (live) live.hidden = true;
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, RETRY_MS);
    });
    for (const type of ["created", "updated", "deleted"]) {
      source.addEventListener(type, (message) => {
        const event = JSON.parse(message.data);
        if (main.dataset.page === "list") onList(type, event.user);
        if (main.dataset.page === "detail") onDetail(type, event.user);
      });
    }
  }

  function cell(cls, text) {
    const td = document.createElement("td");
    td.className = cls;
    td.textContent = text;
    return td;
  }

  function row(user) {
    const tr = document.createElement("tr");
    tr.dataset.userId = String(user.id);
    const name = document.createElement("td");
    name.className = "username";
    const link = document.createElement("a");
    link.href = "/ui/users/" + user.id;
    link.textContent = user.username;
    name.appendChild(link);
    const created = cell("created", "");
    const time = document.createElement("time");
    time.dateTime = user.create_time;
    time.textContent = user.create_time.slice(0, 16).replace("T", " ");
    created.appendChild(time);
    tr.append(cell("id", String(user.id)), name, cell("display_name", user.display_name),
      cell("email", user.email), created);
    return tr;
  }

  // The page shown, read again from the JSON API (same size, filter and token as the page).
  async function refreshList() {
    const query = new URLSearchParams({
      page_size: main.dataset.pageSize || "20",
      prefix: main.dataset.prefix || "",
      page_token: main.dataset.pageToken || "",
    });
    let page;
    try {
      const response = await fetch("/api/v1/users?" + query, { headers: { Accept: "application/json" } });
      if (!response.ok) return;  // the next reconnect tries again
      page = await response.json();
    } catch (error) {
      return;
    }
    document.querySelector("#users tbody").replaceChildren(...page.users.map(row));
    main.dataset.lastPage = page.next_page_token ? "false" : "true";
    const empty = document.getElementById("empty");
    if (empty && page.users.length) empty.remove();
    main.dataset.refreshed = String(Date.now());
  }

  function onList(type, user) {
    const body = document.querySelector("#users tbody");
    const existing = body.querySelector('tr[data-user-id="' + user.id + '"]');
    // Usernames are lowercase; the search matches any case, as the server's ListUsers does.
    const prefix = (main.dataset.prefix || "").toLowerCase();
    const matches = user.username.toLowerCase().startsWith(prefix);
    if (type === "deleted" || (existing && !matches)) {
      if (existing) existing.remove();
    } else if (existing) {
      existing.replaceWith(row(user));
    } else if (type === "created" && matches && main.dataset.lastPage === "true") {
      const tr = row(user);
      tr.classList.add("fresh");
      body.appendChild(tr);
      const empty = document.getElementById("empty");
      if (empty) empty.remove();
    }
  }

  function onDetail(type, user) {
    if (String(user.id) !== main.dataset.userId) return;
    const banner = document.getElementById("changed");
    banner.textContent = type === "deleted"
      ? "This user was just deleted elsewhere."
      : "This user was just changed elsewhere: reload to see the current version.";
    banner.hidden = false;
  }

  // The change feed is for admins: other viewers' pages (data-live="off") open none.
  if (document.body.dataset.live !== "off") connect();
})();
