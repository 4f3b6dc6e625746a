// The slot page's step editor (issue 14): the slot's ordered steps, each a provider + operation + settings form
// (rendered from the operation's settings_schema), the alternatives tried when it fails or time runs short (each
// with its own provider, operation and settings) and whether it is optional. Steps can be added, removed and moved
// up and down with buttons (keyboard-reachable, labelled for screen readers). Field paths are the API's:
// "steps/1/alternatives/0/settings_json/prompt". Step 1's own controls keep the page's historic ids (provider,
// operation, setting-<path>); the others are prefixed "step-<i>-" and "step-<i>-alt-<k>-".
import { h, setFieldError } from "./core.js";
import { schemaForm } from "./schema-form.js";

export const MAX_STEPS = 8; // the slot API's limits (helper "slots"): refused here before any request
export const MAX_ALTERNATIVES = 3;

let serial = 0; // each step's stable key: variants keep their overrides with a step when it moves

function idsFor(step, alt) {
  const base = alt !== null ? `step-${step}-alt-${alt}-` : step > 0 ? `step-${step}-` : "";
  return { base, provider: `${base}provider`, operation: `${base}operation`, settings: `${base}setting-` };
}

/**
 * One provider/operation/settings choice (a step's own, or one of its alternatives). `values` is
 * {provider_id, operation_id, settings_json}; `ctx` {providers, uploadMedia, mediaUrl, onChange}.
 */
function choice(ctx, values, ids) {
  const errorLine = (id) => h("p", { class: "field-error", id: `${id}-error` });
  const providerErr = errorLine(ids.provider);
  const operationErr = errorLine(ids.operation);
  const settingsErr = h("p", { class: "field-error", id: `${ids.base}settings-error`, role: "alert" });
  const hint = h("p", { class: "field-hint", id: `${ids.operation}-hint` });
  const providerSel = h("select", { id: ids.provider, "aria-describedby": `${ids.provider}-error` });
  const operationSel = h("select", { id: ids.operation,
    "aria-describedby": `${ids.operation}-hint ${ids.operation}-error` });
  const holder = h("div", { class: "settings-fields", "aria-live": "polite" });
  let form = null;

  const provider = () => ctx.providers.find((p) => p.id === providerSel.value);
  const operation = () => provider()?.operations.find((op) => op.id === operationSel.value);

  providerSel.append(h("option", { value: "" }, "Choose a provider…"),
    ...ctx.providers.map((p) => h("option", { value: p.id }, p.available ? p.name : `${p.name} (no API key)`)));
  providerSel.value = values.provider_id || "";

  function fillOperations(selected) {
    const p = provider();
    // A booth slot answers with an image: operations that make a video or a record (tasks only) are not offered.
    const ops = p ? p.operations.filter((op) => (op.produces || "image") === "image") : [];
    operationSel.replaceChildren(h("option", { value: "" }, p ? "Choose an operation…" : "Choose a provider first"),
      ...ops.map((op) => h("option", { value: op.id }, op.name)));
    operationSel.disabled = !p;
    operationSel.value = ops.some((op) => op.id === selected) ? selected : "";
  }

  /** Rebuild the settings fields for the chosen operation, keeping the values entered where they fit. */
  function renderSettings(settings) {
    const op = operation();
    hint.textContent = op ? op.description : "";
    form = op ? schemaForm(op.settings_schema, settings, { ...ctx, idPrefix: ids.settings }) : null;
    holder.replaceChildren(...(form ? [form.element] : []));
  }

  const settingsNow = () => (form ? form.collect().value : {});
  providerSel.addEventListener("change", () => {
    const keep = settingsNow();
    fillOperations(operationSel.value);
    renderSettings(keep);
    ctx.onChange();
  });
  operationSel.addEventListener("change", () => {
    const keep = settingsNow();
    renderSettings(keep);
    ctx.onChange();
  });
  fillOperations(values.operation_id);
  renderSettings(values.settings_json || {});

  const element = h("div", { class: "choice" },
    h("div", { class: "grid-2" },
      h("div", { class: "field", dataset: { path: "provider_id" } },
        h("label", { for: ids.provider }, "Provider"), providerSel, providerErr),
      h("div", { class: "field", dataset: { path: "operation_id" } },
        h("label", { for: ids.operation }, "Operation"), operationSel, hint, operationErr)),
    holder, settingsErr);

  return {
    element,
    provider,
    operation,
    /** What is entered now, problems or not (kept across a re-render). */
    snapshot: () => ({ provider_id: providerSel.value, operation_id: operationSel.value,
      settings_json: settingsNow() }),
    /** The value for the API and the problems found here, at paths under `prefix` ("steps/0/"). */
    collect(prefix) {
      setFieldError(providerSel, providerErr, "");
      setFieldError(operationSel, operationErr, "");
      settingsErr.textContent = "";
      const problems = [];
      if (!providerSel.value) problems.push({ field: `${prefix}provider_id`, message: "Choose a provider." });
      else if (!operationSel.value) problems.push({ field: `${prefix}operation_id`, message: "Choose an operation." });
      const settings = form ? form.collect() : { value: {}, problems: [] };
      problems.push(...settings.problems.map((p) => ({ ...p, field: `${prefix}settings_json/${p.field}` })));
      return { value: { provider_id: providerSel.value, operation_id: operationSel.value,
        settings_json: settings.value }, problems };
    },
    /** Show a problem whose path (below this choice) is `rest` ("provider_id", "settings_json/x", ""); answers the
     * control to focus, or null when the settings form focused its field. */
    showError(rest, message) {
      if (rest === "provider_id") {
        setFieldError(providerSel, providerErr, message);
        return providerSel;
      }
      if (rest === "operation_id") {
        setFieldError(operationSel, operationErr, message);
        return operationSel;
      }
      const inner = rest.replace(/^settings_json\/?/, "");
      if (form && inner && !form.showErrors([{ field: inner, message }]).length) return null;
      settingsErr.textContent = inner ? `${inner}: ${message}` : message;
      return providerSel;
    },
  };
}

/**
 * The editor in `holder`. `ctx` {providers, uploadMedia, mediaUrl, onChange}: onChange() runs after any change
 * of a step's provider or operation and after steps are added, removed or moved.
 */
export function stepsEditor(holder, ctx) {
  let steps = []; // [{key, primary, optional, alternatives: [choice], error}] in the page's order
  const addButton = h("button", { type: "button", class: "btn small secondary", id: "add-step" }, "Add a step");
  const listError = h("p", { class: "field-error", id: "steps-error", role: "alert" });
  const list = h("ol", { class: "steps", "aria-label": "Steps, run in this order" });
  holder.replaceChildren(list, h("div", { class: "row" }, addButton), listError);

  const snapshot = () => steps.map((s) => ({ key: s.key, ...s.primary.snapshot(), optional: s.optional.checked,
    alternatives: s.alternatives.map((a) => a.snapshot()) }));

  /** Rebuild every step from `models` (after a structural change); focus `focusId` afterwards if given. */
  function render(models, focusId) {
    const c = { ...ctx, onChange: () => {
      retitle();
      ctx.onChange();
    } };
    steps = models.map((m, i) => {
      const primary = choice(c, m, idsFor(i, null));
      const alternatives = (m.alternatives || []).map((a, k) => choice(c, a, idsFor(i, k)));
      const optional = h("input", { id: `step-${i}-optional`, type: "checkbox" });
      optional.checked = Boolean(m.optional);
      return { key: m.key || `s${++serial}`, primary, alternatives, optional,
        error: h("p", { class: "field-error", id: `step-${i}-error`, role: "alert" }) };
    });
    list.replaceChildren(...steps.map((s, i) => stepElement(s, i)));
    addButton.disabled = steps.length >= MAX_STEPS;
    retitle();
    if (focusId) document.getElementById(focusId)?.focus();
  }

  /** Change the steps (`change(models)` edits the snapshot), rebuild, focus `focusId(models)`. */
  function restructure(change, focusId, structural = true) {
    const models = snapshot();
    change(models);
    render(models, focusId(models));
    if (structural) ctx.onChange();
  }

  function stepElement(step, i) {
    const n = i + 1;
    const move = (to, label, text) => h("button", { type: "button", class: "btn small secondary",
      id: `step-${i}-${label}`, "aria-label": `Move step ${n} ${label}`, disabled: to < 0 || to >= steps.length,
      onclick: () => restructure((models) => {
        [models[i], models[to]] = [models[to], models[i]];
      }, (models) => {
        // The same button on the step's new place, or its other one when that end of the list disables it.
        const stillMovable = label === "up" ? to > 0 : to < models.length - 1;
        return `step-${to}-${stillMovable ? label : label === "up" ? "down" : "up"}`;
      }) }, text);
    const remove = h("button", { type: "button", class: "btn small secondary", id: `step-${i}-remove`,
      "aria-label": `Remove step ${n}`, disabled: steps.length === 1,
      onclick: () => restructure((models) => models.splice(i, 1),
        (models) => `step-${Math.min(i, models.length - 1)}-title`) }, "Remove");
    const alternatives = step.alternatives.map((alt, k) => h("fieldset", { class: "alternative",
      dataset: { alternative: k } },
      h("legend", {}, `Alternative ${k + 1}`), alt.element,
      h("button", { type: "button", class: "btn small secondary", id: `step-${i}-alt-${k}-remove`,
        "aria-label": `Remove alternative ${k + 1} of step ${n}`,
        onclick: () => restructure((models) => models[i].alternatives.splice(k, 1), () => `step-${i}-add-alt`, false),
      }, "Remove alternative")));
    const addAlt = h("button", { type: "button", class: "btn small secondary", id: `step-${i}-add-alt`,
      "aria-label": `Add an alternative to step ${n}`, disabled: step.alternatives.length >= MAX_ALTERNATIVES,
      onclick: () => restructure((models) => {
        const { provider_id, operation_id, settings_json } = models[i]; // a start: the same, with another model
        models[i].alternatives.push({ provider_id, operation_id, settings_json });
      }, (models) => `step-${i}-alt-${models[i].alternatives.length - 1}-provider`, false) }, "Add an alternative");
    return h("li", { class: "step", dataset: { step: i }, "aria-labelledby": `step-${i}-title` },
      h("div", { class: "step-head" },
        h("h3", { id: `step-${i}-title`, tabindex: "-1" }, `Step ${n}`),
        h("div", { class: "step-tools", role: "group", "aria-label": `Step ${n}` },
          move(i - 1, "up", "↑ Up"), move(i + 1, "down", "↓ Down"), remove)),
      step.primary.element,
      h("label", { class: "switch", for: `step-${i}-optional` }, step.optional,
        "Optional: when it fails, skip it and go on with its input"),
      h("div", { class: "alternatives" },
        alternatives.length ? h("p", { class: "field-hint" },
          "Tried in this order when the step fails for good or the time left cannot fit another attempt.") : null,
        alternatives, addAlt),
      step.error);
  }

  /** Step headings name what each step does ("Step 2 · Gemini · Change image"). */
  function retitle() {
    steps.forEach((s, i) => {
      const what = [s.primary.provider()?.name, s.primary.operation()?.name].filter(Boolean).join(" · ");
      document.getElementById(`step-${i}-title`).textContent = what ? `Step ${i + 1} · ${what}` : `Step ${i + 1}`;
    });
  }

  addButton.addEventListener("click", () => restructure((models) => models.push({ alternatives: [] }),
    (models) => `step-${models.length - 1}-provider`));

  return {
    /** Show `list` (the API's steps; an empty list shows one empty step). */
    load(given) {
      render((given && given.length ? given : [{}]).map((s) => ({ ...s, key: undefined })));
    },
    /** [{key, index, provider, operation}] in order: what the rest of the page needs to know of the steps. */
    describe: () => steps.map((s, index) => ({ key: s.key, index, provider: s.primary.provider(),
      operation: s.primary.operation() })),
    /** The API's steps and the problems found here ([{field, message}] at API paths). */
    collect() {
      listError.textContent = "";
      const problems = [];
      const value = steps.map((s, i) => {
        s.error.textContent = "";
        const own = s.primary.collect(`steps/${i}/`);
        problems.push(...own.problems);
        const alternatives = s.alternatives.map((a, k) => {
          const alt = a.collect(`steps/${i}/alternatives/${k}/`);
          problems.push(...alt.problems);
          return alt.value;
        });
        return { ...own.value, alternatives, optional: s.optional.checked };
      });
      return { value, problems };
    },
    /** Show problems at "steps/…" at their fields, focusing the first; answers the problems not theirs. */
    showErrors(problems) {
      const rest = [];
      let focused = false;
      const focus = (target) => {
        if (!focused) target?.focus(); // null: a settings form has focused its own field
        focused = true;
      };
      for (const p of problems) {
        const m = /^steps(?:\/(\d+)(?:\/alternatives\/(\d+))?)?(?:\/(.*))?$/.exec(p.field);
        const step = m && m[1] !== undefined ? steps[Number(m[1])] : undefined;
        if (!m) {
          rest.push(p);
          continue;
        }
        if (!step) {
          listError.textContent = p.message;
          focus(addButton);
          continue;
        }
        const tail = m[3] || "";
        const alt = m[2] !== undefined ? step.alternatives[Number(m[2])] : null;
        if (alt || (m[2] === undefined && /^(provider_id|operation_id|settings_json)(\/|$)/.test(tail))) {
          focus((alt || step.primary).showError(tail, p.message));
        } else {
          step.error.textContent = tail ? `${tail}: ${p.message}` : p.message;
          focus(document.getElementById(`step-${m[1]}-title`));
        }
      }
      return rest;
    },
  };
}
