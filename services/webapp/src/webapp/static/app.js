// Live updates from /api/v1/users/events; the pages work without this file.
"use strict";

(function () {
  const main = document.querySelector("main");
  if (!main || !window.EventSource) return;
  const live = document.getElementById("live");
  const RETRY_MS = 3000;

  // EventSource retries by itself after a dropped stream, but gives up for good when a reconnect
  // is answered with an error status (503 while the users service is down): start anew then.
  function connect() {
    const source = new EventSource("/api/v1/users/events");
    source.addEventListener("open", () => { if (live) live.hidden = false; });
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

  function onList(type, user) {
    const body = document.querySelector("#users tbody");
    const existing = body.querySelector('tr[data-user-id="' + user.id + '"]');
    const matches = user.username.startsWith(main.dataset.prefix || "");
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
