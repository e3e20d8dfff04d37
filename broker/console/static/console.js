// Redraws each chart (svg.chart[data-src]) from its JSON points every two seconds.
// The points are [{t, <series>: value, ...}]; every key but t is one line.
"use strict";
const NS = "http://www.w3.org/2000/svg";

function draw(svg, points) {
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  svg.dataset.points = String(points.length);
  const caption = svg.parentNode.querySelector(".last");
  if (points.length === 0) { if (caption) caption.textContent = "no samples yet"; return; }
  const keys = Object.keys(points[0]).filter((k) => k !== "t");
  const t0 = points[0].t, t1 = points[points.length - 1].t;
  const top = Math.max(1, ...points.flatMap((p) => keys.map((k) => p[k])));
  keys.forEach((key, i) => {
    const line = document.createElementNS(NS, "polyline");
    line.setAttribute("class", "s" + i);
    line.setAttribute("points", points.map((p) =>
      `${t1 > t0 ? ((p.t - t0) / (t1 - t0)) * 600 : 600},${160 - (p[key] / top) * 150}`).join(" "));
    svg.appendChild(line);
  });
  const last = points[points.length - 1];
  if (caption) caption.textContent = keys.map((k) => `${k} ${Math.round(last[k])}`).join(", ");
}

function refresh() {
  document.querySelectorAll("svg.chart[data-src]").forEach((svg) => {
    fetch(svg.dataset.src).then((r) => r.json()).then((body) => draw(svg, body.points))
      .catch(() => {});
  });
}

refresh();
setInterval(refresh, 2000);
