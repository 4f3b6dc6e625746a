// A small inline-SVG bar chart of requests and errors per day (no library).
const NS = "http://www.w3.org/2000/svg";

function node(tag, attrs, text) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** `days`: [{label, requests, errors}] oldest first. Draws requests with the errors inside them. */
export function barChart(days, { width = 720, height = 180 } = {}) {
  const pad = { top: 12, right: 8, bottom: 24, left: 30 };
  const inner = { w: width - pad.left - pad.right, h: height - pad.top - pad.bottom };
  const top = Math.max(2, Math.ceil(Math.max(0, ...days.map((d) => d.requests)) / 2) * 2); // even: whole half-way tick
  const svg = node("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "xMidYMid meet" });
  for (const fraction of [0, 0.5, 1]) {
    const y = pad.top + inner.h * (1 - fraction);
    svg.append(node("line", { x1: pad.left, x2: width - pad.right, y1: y, y2: y, stroke: "rgba(80,80,140,.18)" }));
    svg.append(node("text", { x: pad.left - 6, y: y + 4, "text-anchor": "end" }, String(Math.round(top * fraction))));
  }
  const slot = inner.w / Math.max(1, days.length);
  const bar = Math.max(4, slot * 0.62);
  const labelEvery = Math.ceil(38 / slot); // a "MM-DD" label needs about 38 px
  days.forEach((d, i) => {
    const x = pad.left + i * slot + (slot - bar) / 2;
    const hReq = (d.requests / top) * inner.h;
    const hErr = (d.errors / top) * inner.h;
    const req = node("rect", { class: "bar-req", x, y: pad.top + inner.h - hReq, width: bar, height: hReq, rx: 3 });
    req.append(node("title", {}, `${d.label}: ${d.requests} requests, ${d.errors} errors`));
    svg.append(req);
    if (hErr > 0) svg.append(node("rect", { class: "bar-err", x, y: pad.top + inner.h - hErr, width: bar, height: hErr, rx: 3 }));
    if (i % labelEvery === 0) {
      svg.append(node("text", { x: x + bar / 2, y: height - 6, "text-anchor": "middle" }, d.label));
    }
  });
  return svg;
}
