// The main page: the operator's slots with their ingest URLs.
import { api, busy, copyText, h, requireSession, toast, topbar } from "./core.js";

requireSession();
topbar("home");

const body = document.getElementById("slots-body");
const search = document.getElementById("slot-search");
let slots = [];
let names = { providers: {}, operations: {} };

function catalogNames(catalog) {
  const out = { providers: {}, operations: {} };
  for (const p of catalog.providers) {
    out.providers[p.id] = p.name;
    for (const op of p.operations) out.operations[op.id] = op.name;
  }
  return out;
}

function row(slot) {
  const urlId = `url-${slot.id}`;
  const input = h("input", { id: urlId, type: "text", readonly: true, value: slot.ingest_url,
    "aria-label": `Ingest URL of ${slot.name || slot.id}` });
  const copy = h("button", { class: "btn small secondary", type: "button", "data-copy": slot.id,
    "aria-label": `Copy the ingest URL of ${slot.name || slot.id}` }, "Copy");
  copy.addEventListener("click", () =>
    busy(copy, async () => {
      await copyText(slot.ingest_url, input);
      toast(`Copied ${slot.ingest_url}`);
    }));
  const title = slot.is_configured && slot.name ? slot.name : slot.is_configured ? slot.id : "free";
  const what = slot.is_configured
    ? `${names.providers[slot.provider_id] || slot.provider_id} · ${names.operations[slot.operation_id] || slot.operation_id}`
    : "not configured";
  return h("tr", { dataset: { slot: slot.id } },
    h("td", { "data-label": "Slot" },
      h("a", { class: slot.is_configured ? "slot-name" : "slot-name -free", href: `slot.html?id=${encodeURIComponent(slot.id)}` },
        title),
      h("div", { class: "muted" }, slot.id)),
    h("td", { "data-label": "Processing", class: "muted" }, what),
    h("td", { "data-label": "Ingest URL" }, h("div", { class: "url-box" }, input, copy)));
}

function render() {
  const term = search.value.trim().toLowerCase();
  const shown = slots.filter((s) => !term || s.id.includes(term) || (s.name || "").toLowerCase().includes(term));
  body.replaceChildren(...(shown.length ? shown.map(row)
    : [h("tr", {}, h("td", { colspan: 3, class: "muted" }, "No slot matches."))]));
}

search.addEventListener("input", render);

try {
  const [list, catalog] = await Promise.all([api("/api/slots"), api("/api/providers")]);
  slots = list.data;
  names = catalogNames(catalog);
  render();
} catch (err) {
  if (err.status !== 401) {
    body.replaceChildren(h("tr", {}, h("td", { colspan: 3, class: "alert" }, `Cannot load the slots: ${err.message}`)));
  }
}
