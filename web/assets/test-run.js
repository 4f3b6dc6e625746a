// The slot page's test run, the parts that do not need the form: following a job past the booth's wait on its
// event stream, and showing each step's intermediate image with its time, cost and error (issue 14 item 8).
import { API_BASE } from "./config.js";
import { ApiError, api, formatMs, h, money } from "./core.js";

export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

/**
 * Follow a job on its event stream until it ends, telling `onStatus(status)` each status as it comes, then answer
 * the job's detail (one GET: its result link, cost, steps or error). EventSource cannot send the bearer header,
 * so the stream is opened with a stream token (this job, this session, 60 s). While the token is valid the browser
 * reopens a stream the server closed (its cap on a stream's length) by itself; a stream it gave up on (refused
 * once the token expired, or unreachable) is reopened here with a fresh token, REOPENS times at most in a row.
 * No polling.
 */
const REOPENS = 3;

export async function followJob(jobId, onStatus) {
  const path = `/api/jobs/${encodeURIComponent(jobId)}`;
  await new Promise((resolve, reject) => {
    let failures = 0;
    const reopenLater = () => {
      failures += 1;
      if (failures > REOPENS) resolve(); // the job's detail tells where it stands
      else setTimeout(open, 1000 * failures);
    };
    const open = async () => {
      let grant;
      try {
        grant = await api(`${path}/events/token`, { method: "POST" });
      } catch (err) {
        if (err instanceof ApiError && err.status === 401) reject(err); // signed out: api() went to the login page
        else reopenLater();
        return;
      }
      const source = new EventSource(API_BASE + grant.events_path);
      source.addEventListener("status", (event) => {
        failures = 0;
        const { status } = JSON.parse(event.data);
        if (!TERMINAL.has(status)) onStatus(status);
      });
      source.addEventListener("end", () => {
        source.close();
        resolve();
      });
      source.addEventListener("error", () => {
        if (source.readyState !== EventSource.CLOSED) return; // the browser reconnects by itself
        reopenLater();
      });
    };
    open();
  });
  const job = await api(path);
  if (!TERMINAL.has(job.status)) {
    throw new Error(`the test job is still ${job.status}; see it later under its id ${jobId}`);
  }
  return job;
}

/**
 * Show a run's steps in `list` (an <ol>): one item per step and alternative tried, in order, with its image
 * (the test answer's `image_url`, or the job detail's `output_media_id` shown through `mediaUrl`), time, cost
 * and error. `providers` is the catalog (names, currencies). An empty `steps` hides the list.
 */
export function showSteps(list, steps, providers, mediaUrl) {
  const items = (steps || []).map((s) => {
    const p = providers.find((x) => x.id === s.provider_id);
    const op = p?.operations.find((o) => o.id === s.operation_id);
    const name = `Step ${s.index + 1}${s.alternative ? `, alternative ${s.alternative}` : ""}`;
    const src = s.image_url || (s.output_media_id ? mediaUrl(s.output_media_id) : null);
    const facts = [p ? p.name : s.provider_id, op ? op.name : s.operation_id, s.status !== "succeeded" && s.status,
      s.ms !== null && s.ms !== undefined && formatMs(s.ms), s.status === "succeeded" && `cost ${money(s.cost, p?.currency)}`]
      .filter(Boolean);
    return h("li", { class: "step-result", dataset: { step: s.index, alternative: s.alternative || 0, status: s.status } },
      h("figure", {},
        src ? h("img", { class: "step-img", src, alt: `${name}: its image`, loading: "eager" })
          : h("div", { class: "step-img -none", "aria-hidden": "true" }),
        h("figcaption", {}, h("strong", {}, name), h("br"), facts.join(" · ")),
        s.error ? h("p", { class: "field-error" }, s.error.message || String(s.error)) : null));
  });
  list.replaceChildren(...items);
  list.hidden = items.length === 0;
}
