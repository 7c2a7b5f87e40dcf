// oar studio, Notebooks page: follow the server's status while it starts or stops (spinner, buttons).
"use strict";

async function followNotebookServer() {
  const box = document.getElementById("notebook-server");
  if (!box) return;
  const show = (id, on) => { const el = document.getElementById(id); if (el) el.hidden = !on; };
  for (;;) {
    if (!["starting", "stopping"].includes(box.dataset.status)) return;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    let server;
    try {
      const response = await fetch("/api/v1/notebooks");
      if (!response.ok) continue;
      server = await response.json();
    } catch (err) { continue; }
    box.dataset.status = server.status;
    const tag = document.getElementById("notebook-status");
    tag.textContent = server.status;
    tag.className = "tag " + server.status;
    document.getElementById("notebook-message").textContent = server.message;
    const busy = ["starting", "stopping"].includes(server.status);
    show("notebook-spinner", busy);
    show("notebook-open", server.status === "running");
    show("notebook-stop-form", ["running", "starting"].includes(server.status));
    show("notebook-start-form", !["running", "starting"].includes(server.status));
  }
}

function followRedirect() {
  const link = document.getElementById("notebook-redirect");
  if (link) window.location.replace(link.href);
}

document.addEventListener("DOMContentLoaded", () => { followRedirect(); followNotebookServer(); });
