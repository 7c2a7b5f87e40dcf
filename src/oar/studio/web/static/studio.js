// oar studio: metric curves (Plotly, served from the installed wheel), the "try it" box, live figures.
"use strict";

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

function drawCurves() {
  const block = document.getElementById("series-data");
  if (!block || !window.Plotly) return;
  const series = JSON.parse(block.textContent); // {run_id: {metric: {x, y}}}
  document.querySelectorAll(".plot[data-metric]").forEach((box) => {
    const metric = box.dataset.metric;
    const traces = Object.entries(series)
      .filter(([, curves]) => curves[metric])
      .map(([run, curves]) => ({ x: curves[metric].x, y: curves[metric].y, name: run, mode: "lines+markers", type: "scatter" }));
    window.Plotly.newPlot(box.querySelector(".plot-area"), traces, {
      margin: { l: 50, r: 10, t: 10, b: 70 }, xaxis: { title: { text: "step" } }, showlegend: traces.length > 1,
      legend: { orientation: "h", y: -0.35 },
    }, { displaylogo: false, responsive: true });
    box.dataset.drawn = String(traces.length);
  });
}

async function tryIt(event) {
  event.preventDefault();
  const form = event.target;
  const output = form.parentElement.querySelector(".try-it-output");
  let inputs;
  try {
    inputs = JSON.parse(form.elements.inputs.value);
  } catch (err) {
    output.textContent = "inputs are not valid JSON: " + err.message;
    return;
  }
  output.textContent = "…";
  const response = await fetch(`/api/v1/deployments/${form.dataset.deployment}/predict`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
    body: JSON.stringify({ inputs }),
  });
  const body = await response.json();
  const image = response.ok && body.outputs ? body.outputs.image_png_base64 : undefined;
  if (image !== undefined) {  // a text-to-image model: show the picture, not its base64
    const img = document.createElement("img");
    img.className = "try-it-image";
    img.alt = "generated image";
    img.src = "data:image/png;base64," + image;
    output.replaceChildren(img, document.createTextNode(`\n${body.model_id}`));
  } else {
    output.textContent = response.ok ? JSON.stringify(body, null, 2) : `error ${response.status}: ${body.error.message}`;
  }
  output.dataset.status = String(response.status);
}

function replicaRow(replica) {
  const row = document.createElement("tr");
  const number = (value) => (value === undefined || value === null ? "-" : value.toFixed(1));
  const node = replica.node === "local" ? "this machine" : `${replica.node.slice(0, 12)} (${replica.host})`;
  const cells = [replica.name, node, replica.status, `v${replica.version}`,
    number(replica.requests_per_second), number(replica.p99_ms), number(replica.cpu_percent)];
  cells.forEach((text, index) => {
    const cell = document.createElement("td");
    cell.textContent = text;
    if (index >= 4) cell.className = "num";
    row.appendChild(cell);
  });
  row.dataset.replica = replica.name;
  return row;
}

async function refreshFigures(table) {
  try {
    const response = await fetch(`/api/v1/deployments/${table.dataset.deployment}/figures`);
    if (!response.ok) return;
    const figures = await response.json();
    table.querySelectorAll("[data-figure]").forEach((cell) => {
      const value = figures[cell.dataset.figure];
      cell.textContent = value === undefined || value === null ? "-" : (Number.isInteger(value) ? value : value.toFixed(2));
    });
    const status = document.getElementById("deployment-status");
    if (status && figures.status) { status.textContent = figures.status; status.className = "tag " + figures.status; }
    const replicas = document.querySelector("table.replicas tbody");
    if (replicas && figures.replicas) replicas.replaceChildren(...figures.replicas.map(replicaRow));
    if (figures.endpoint) document.querySelectorAll(".endpoint-text").forEach((el) => { el.textContent = figures.endpoint; });
  } catch (err) { /* the next tick retries */ }
}

document.addEventListener("DOMContentLoaded", () => {
  drawCurves();
  document.querySelectorAll("form.try-it").forEach((form) => form.addEventListener("submit", tryIt));
  document.querySelectorAll("table.figures").forEach((table) => {
    refreshFigures(table);
    setInterval(() => refreshFigures(table), 2000);
  });
});
