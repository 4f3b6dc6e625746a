// The slot page's variants (issue 14 item 6, the guest's choice): named variants that override a step's prompt,
// chosen by the booth with `?variant=<name>` on the ingest URL or by a form field the slot names (a survey answer).
// A small table: one row per variant, one prompt per step whose operation has a prompt. Overrides are kept by the
// step's key (steps.js), so they follow a step that moves; the API gets them by the step's index, as strings:
// {"<name>": {"<step index>": {"prompt": "…"}}}. Overrides of other settings (set through the API) are kept as they
// are. Errors arrive at "variants/<name>/<index>/prompt", "variants/<name>", "variant_field".
import { h, setFieldError } from "./core.js";

const NAME = /^[A-Za-z0-9_-]{1,40}$/; // the slot API's rule for a variant's name
const MAX_VARIANTS = 20;

/** The section in `holder`; `ingestUrl` is the slot's. Answers {load, setSteps, collect, showErrors}. */
export function variantsEditor(holder, ingestUrl) {
  let rows = []; // [{name, overrides: {stepKey: {setting: value}}}]
  let steps = []; // steps.js describe(): [{key, index, provider, operation}]
  const body = h("tbody");
  const head = h("tr");
  const table = h("table", { class: "stack variants", id: "variants-table" },
    h("caption", { class: "sr-only" }, "Variants and the prompts they use"), h("thead", {}, head), body);
  const add = h("button", { type: "button", class: "btn small secondary", id: "add-variant" }, "Add a variant");
  const listError = h("p", { class: "field-error", id: "variants-error", role: "alert" });
  const fieldInput = h("input", { id: "variant-field", type: "text", maxlength: 100,
    placeholder: "e.g. style", "aria-describedby": "variant-field-hint variant-field-error" });
  const fieldError = h("p", { class: "field-error", id: "variant-field-error" });
  const example = h("code", { id: "variant-example" });
  holder.replaceChildren(
    h("p", { class: "muted" }, "A variant replaces a step's prompt when the booth asks for it; any other photo, or ",
      "an unknown variant, gets the steps as they are."),
    table, h("div", { class: "row" }, add), listError,
    h("div", { class: "field", dataset: { path: "variant_field" } },
      h("label", { for: "variant-field" }, "Form field that names the variant"), fieldInput,
      h("p", { class: "field-hint", id: "variant-field-hint" },
        "For booths that send survey answers in the form (Breeze Booth). Empty: only the URL chooses. ",
        "The booth can also add ?variant=<name> to the ingest URL, e.g. ", example),
      fieldError));

  const prompted = () => steps.filter((s) => s.operation?.settings_schema?.properties?.prompt);
  const promptId = (r, s) => `variant-${r}-step-${s.index}-prompt`;

  function showExample() {
    const first = rows.find((r) => r.name.trim())?.name.trim();
    example.textContent = `${ingestUrl}?variant=${first ? encodeURIComponent(first) : "<name>"}`;
  }

  /** Read what is typed into the rows (before the table is rebuilt). */
  function snapshot() {
    rows.forEach((row, r) => {
      row.name = document.getElementById(`variant-${r}-name`)?.value ?? row.name;
      for (const s of prompted()) {
        const area = document.getElementById(promptId(r, s));
        if (!area) continue;
        const override = { ...row.overrides[s.key] };
        if (area.value.trim()) override.prompt = area.value;
        else delete override.prompt;
        row.overrides[s.key] = override;
      }
    });
  }

  function render(focusId) {
    const columns = prompted();
    head.replaceChildren(h("th", { scope: "col" }, "Variant"),
      ...columns.map((s) => h("th", { scope: "col" }, `Step ${s.index + 1} prompt`)),
      h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Remove")));
    body.replaceChildren(...rows.map((row, r) => h("tr", { dataset: { variant: r } },
      h("td", { dataset: { label: "Variant" } },
        h("label", { class: "sr-only", for: `variant-${r}-name` }, `Variant ${r + 1} name`),
        h("input", { id: `variant-${r}-name`, type: "text", maxlength: 40, value: row.name, placeholder: "e.g. anime",
          "aria-describedby": `variant-${r}-error`, oninput: (e) => {
            row.name = e.target.value;
            showExample();
          } }),
        h("p", { class: "field-error", id: `variant-${r}-error` })),
      ...columns.map((s) => {
        const label = `Step ${s.index + 1} prompt`;
        const area = h("textarea", { id: promptId(r, s), rows: 2, maxlength: 2000,
          placeholder: "Empty: the step's own prompt", "aria-describedby": `variant-${r}-error` });
        area.value = row.overrides[s.key]?.prompt ?? "";
        return h("td", { dataset: { label } },
          h("label", { class: "sr-only", for: promptId(r, s) }, `Variant ${r + 1}, ${label.toLowerCase()}`), area);
      }),
      h("td", {}, h("button", { type: "button", class: "btn small secondary", id: `variant-${r}-remove`,
        "aria-label": `Remove variant ${r + 1}`, onclick: () => {
          snapshot();
          rows.splice(r, 1);
          render(rows.length ? `variant-${Math.min(r, rows.length - 1)}-name` : "add-variant");
        } }, "Remove")))));
    table.hidden = rows.length === 0;
    add.disabled = rows.length >= MAX_VARIANTS;
    showExample();
    if (focusId) document.getElementById(focusId)?.focus();
  }

  add.addEventListener("click", () => {
    snapshot();
    rows.push({ name: "", overrides: {} });
    render(`variant-${rows.length - 1}-name`);
  });

  return {
    /** Show the slot's variants and variant field; `described` is the steps as steps.js describes them. */
    load(variants, variantField, described) {
      steps = described;
      rows = Object.entries(variants || {}).map(([name, byIndex]) => ({ name, overrides: Object.fromEntries(
        Object.entries(byIndex || {}).filter(([i]) => steps[Number(i)]).map(([i, o]) => [steps[Number(i)].key, o])) }));
      fieldInput.value = variantField || "";
      render();
    },
    /** The steps changed (added, removed, moved, another operation): columns follow, overrides stay with steps. */
    setSteps(described) {
      snapshot();
      steps = described;
      render();
    },
    /** {value: {variants, variant_field}, problems}. */
    collect() {
      snapshot();
      listError.textContent = "";
      setFieldError(fieldInput, fieldError, "");
      const problems = [];
      const variants = {};
      rows.forEach((row, r) => {
        setFieldError(document.getElementById(`variant-${r}-name`), document.getElementById(`variant-${r}-error`), "");
        const name = row.name.trim();
        if (!NAME.test(name)) {
          problems.push({ field: `variants/${name}`, row: r,
            message: "A name of 1 to 40 letters, digits, - or _ (it goes in the URL)." });
        } else if (name in variants) {
          problems.push({ field: `variants/${name}`, row: r, message: "Another variant has this name." });
        }
        const byIndex = {};
        for (const s of steps) {
          const override = row.overrides[s.key];
          if (override && Object.keys(override).length) byIndex[String(s.index)] = override;
        }
        variants[name] = byIndex;
      });
      const field = fieldInput.value.trim();
      return { value: { variants, variant_field: field || null }, problems };
    },
    /** Show problems at "variants/…" and "variant_field" where they belong; answers the others. */
    showErrors(problems) {
      const rest = [];
      let first = null;
      for (const p of problems) {
        if (p.field === "variant_field") {
          setFieldError(fieldInput, fieldError, p.message);
          first ||= fieldInput;
          continue;
        }
        const m = /^variants(?:\/([^/]*)(?:\/(\d+)(?:\/(.*))?)?)?$/.exec(p.field);
        if (!m) {
          rest.push(p);
          continue;
        }
        const r = p.row ?? rows.findIndex((row) => row.name.trim() === m[1]);
        if (m[1] === undefined || r < 0) {
          listError.textContent = p.message;
          first ||= add;
          continue;
        }
        const step = m[2] !== undefined ? steps[Number(m[2])] : undefined;
        const area = step && document.getElementById(promptId(r, step));
        const name = document.getElementById(`variant-${r}-name`);
        const where = m[2] !== undefined && !area ? `step ${Number(m[2]) + 1}${m[3] ? ` ${m[3]}` : ""}: ` : "";
        setFieldError(area || name, document.getElementById(`variant-${r}-error`), `${where}${p.message}`);
        first ||= area || name;
      }
      first?.focus();
      return rest;
    },
  };
}
