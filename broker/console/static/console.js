// Redraws each chart (svg.chart[data-src]) from its JSON points every two seconds.
// The points are [{t, <series>: value, ...}]; every key but t is one line (a group's
// lag: one line per partition), absent from a point where that series has no sample.
"use strict";
const NS = "http://www.w3.org/2000/svg";

function draw(svg, points) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  svg.dataset.points = String(points.length);
  const caption = svg.parentNode.querySelector(".last");
  if (points.length === 0) { if (caption) caption.textContent = "no samples yet"; return; }
  const keys = [...new Set(points.flatMap((p) => Object.keys(p)))].filter((k) => k !== "t").sort();
  const t0 = points[0].t, t1 = points[points.length - 1].t;
  const top = Math.max(1, ...points.flatMap((p) => keys.map((k) => p[k] || 0)));
  keys.forEach((key, i) => {
    const line = document.createElementNS(NS, "polyline");
    line.setAttribute("class", "s" + (i % 6));
    line.dataset.series = key;
    line.setAttribute("points", points.filter((p) => key in p).map((p) =>
      `${t1 > t0 ? ((p.t - t0) / (t1 - t0)) * 600 : 600},${160 - (p[key] / top) * 150}`).join(" "));
    svg.appendChild(line);
  });
  const last = points[points.length - 1];
  if (caption) caption.textContent = keys.map((k) => `${k} ${k in last ? Math.round(last[k]) : "-"}`).join(", ");
}

function refresh() {
  document.querySelectorAll("svg.chart[data-src]").forEach((svg) => {
    fetch(svg.dataset.src).then((r) => r.json()).then((body) => draw(svg, body.points))
      .catch(() => {});
  });
}

refresh();
setInterval(refresh, 2000);

// The action forms (only on a node with an authorizer): POSTed with the header that a
// cross-site form cannot send; a 401 makes the browser ask for a SCRAM user's login.
document.querySelectorAll("form.action").forEach((form) => {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const out = form.querySelector("output");
    fetch(form.action, {
      method: "POST", credentials: "same-origin",
      headers: {"X-Odradek-Console": "1", "Content-Type": "application/x-www-form-urlencoded"},
      body: new URLSearchParams(new FormData(form)),
    }).then((r) => r.text().then((text) => {
      out.textContent = text;
      out.className = r.ok ? "done" : "failed";
      if (r.ok && form.dataset.then) setTimeout(() => { location.href = form.dataset.then; }, 800);
    })).catch((err) => { out.textContent = String(err); });
  });
});
