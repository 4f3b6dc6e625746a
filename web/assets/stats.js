// The statistics page: every slot's figures since its reset, a reset per slot, the last 14 days as a chart, and
// where one slot's failed requests stopped in its pipeline (by step and alternative) over those days.
import { barChart } from "./chart.js";
import { api, busy, confirmDialog, formatDate, formatMs, h, money, requireSession, toast, topbar } from "./core.js";

requireSession();
topbar("stats");

const DAYS = 14;
const body = document.getElementById("stats-body");

function isoDate(date) {
  return date.toISOString().slice(0, 10);
}

/** A cost in the API's currency ("unknown": the provider names none, so the amount is shown alone). */
function cost(value, currency) {
  return money(value, currency === "unknown" ? undefined : currency);
}

/** The slot's spending since its reset, per currency ("1.20 USD + 30.00 RUB" after a change of provider). */
function totalCost(slot) {
  const parts = Object.entries(slot.total_cost_by_currency || {});
  if (!parts.length) return money(slot.total_cost);
  return parts.map(([currency, value]) => cost(value, currency)).join(" + ");
}

function row(slot) {
  const reset = h("button", { class: "btn small secondary", type: "button", "data-reset": slot.id,
    "aria-label": `Reset the statistics of ${slot.name || slot.id}` }, "Reset");
  reset.addEventListener("click", async () => {
    const sure = await confirmDialog("Reset statistics?",
      `The figures of ${slot.name || slot.id} start again from zero. The all-time count keeps its history.`, "Reset");
    if (!sure) return;
    await busy(reset, async () => {
      await api(`/api/slots/${encodeURIComponent(slot.id)}/reset_stats`, { method: "POST", json: {} });
      toast(`Statistics of ${slot.name || slot.id} reset.`);
      await load();
    });
  });
  const thumb = slot.template_url
    ? h("img", { class: "thumb", src: slot.template_url, alt: `Template of ${slot.name || slot.id}`, loading: "lazy" })
    : "";
  const pct = slot.error_pct === null ? "—" : `${slot.error_pct.toFixed(1)} %`;
  return h("tr", { dataset: { slot: slot.id } },
    h("td", { "data-label": "Slot" }, h("a", { href: `slot.html?id=${encodeURIComponent(slot.id)}`,
      class: slot.name ? "slot-name" : "slot-name -free" }, slot.name || "free"), h("div", { class: "muted" }, slot.id)),
    h("td", {}, thumb),
    h("td", { class: "num", "data-label": "Processed", "data-col": "processed" }, String(slot.processed)),
    h("td", { class: "num", "data-label": "Requests", "data-col": "requests" }, String(slot.requests)),
    h("td", { class: "num", "data-label": "p95 response", "data-col": "p95" }, formatMs(slot.p95_response_ms)),
    h("td", { class: "num", "data-label": "Errors", "data-col": "errors" }, pct),
    h("td", { class: "num", "data-label": "Last cost", "data-col": "last-cost" }, cost(slot.last_cost, slot.last_cost_currency)),
    h("td", { class: "num", "data-label": "Total cost", "data-col": "total-cost" }, totalCost(slot)),
    h("td", { "data-label": "Last reset", "data-col": "last-reset" }, formatDate(slot.last_reset_at)),
    h("td", {}, reset));
}

async function loadChart() {
  const query = new URLSearchParams({ group_by: "day", ...lastDays(),
    page_size: String(DAYS + 1), sort_by: "period_start", sort_order: "asc" });
  const series = await api(`/api/stats/global?${query}`);
  const days = series.data.map((d) => ({
    label: d.period_start.slice(5),
    requests: d.success + d.errors + d.timeouts,
    errors: d.errors + d.timeouts,
  }));
  const chart = document.getElementById("chart");
  // Drawn at the width it is shown at, so its labels keep their size on a phone.
  chart.replaceChildren(barChart(days, { width: Math.max(300, chart.clientWidth || 720) }));
  const total = days.reduce((n, d) => n + d.requests, 0);
  const failed = days.reduce((n, d) => n + d.errors, 0);
  document.getElementById("chart-summary").textContent =
    `${total} requests and ${failed} errors in the last ${DAYS} days.`;
}

function lastDays() {
  const today = new Date();
  const from = new Date(today.getTime() - (DAYS - 1) * 86400000);
  return { from: isoDate(from), to: isoDate(today) };
}

const failuresSlot = document.getElementById("failures-slot");
const failuresBody = document.getElementById("failures-body");

/** One row per step and alternative where the slot's failed requests stopped (steps are shown 1-based). */
async function loadFailures() {
  const slotId = failuresSlot.value;
  if (!slotId) return;
  const query = new URLSearchParams({ group_by: "day", ...lastDays() });
  const stats = await api(`/api/stats/${encodeURIComponent(slotId)}?${query}`);
  const rows = stats.failures_by_step.map((f) => h("tr", { dataset: { step: f.step_index, alternative: f.alternative } },
    h("td", {}, `Step ${f.step_index + 1}`),
    h("td", {}, f.alternative === 0 ? "the step's own" : `alternative ${f.alternative}`),
    h("td", { class: "num" }, String(f.count))));
  failuresBody.replaceChildren(...(rows.length ? rows
    : [h("tr", {}, h("td", { colspan: "3", class: "muted" }, `No failed request stopped at a step in the last ${DAYS} days.`))]));
}

/** The slot chooser: kept across reloads; at first the first slot with errors (else the first slot). */
function fillFailureSlots(slots) {
  const chosen = failuresSlot.value || (slots.find((s) => s.error_pct) || slots[0] || {}).id || "";
  failuresSlot.replaceChildren(...slots.map((s) => h("option", { value: s.id }, s.name ? `${s.name} (${s.id})` : s.id)));
  failuresSlot.value = chosen;
}

failuresSlot.addEventListener("change", () => {
  loadFailures().catch((err) => toast(`Cannot load the failed steps: ${err.message}`, "error"));
});

async function load() {
  const summary = await api("/api/stats/summary");
  document.getElementById("all-time").textContent = String(summary.processed_all_time);
  body.replaceChildren(...summary.data.map(row));
  fillFailureSlots(summary.data);
  await Promise.all([loadChart(), loadFailures()]);
}

try {
  await load();
} catch (err) {
  if (err.status !== 401) toast(`Cannot load the statistics: ${err.message}`, "error");
}
