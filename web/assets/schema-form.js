// The slot page's settings fields, generated from the operation's JSON Schema (`settings_schema`): strings,
// enums, numbers with their ranges, booleans, arrays as JSON text (a box, points), nested objects ($ref into $defs
// too) and media ids as image drop zones. Paths are "/"-joined property names, as the API reports field errors ("output/quality"). Ids are
// "setting-<path>" unless `ctx.idPrefix` says otherwise (a pipeline has one form per step and alternative).
import { h, setFieldError } from "./core.js";
import { dropZone } from "./dropzone.js";

const COLOR = "^#[0-9a-fA-F]{6}$";

function resolve(schema, root) {
  if (schema && typeof schema.$ref === "string" && schema.$ref.startsWith("#/")) {
    const target = schema.$ref.slice(2).split("/").reduce((node, key) => (node ? node[key] : undefined), root);
    return { ...target, ...Object.fromEntries(Object.entries(schema).filter(([k]) => k !== "$ref")) };
  }
  return schema || {};
}

function domId(path, ctx) {
  return `${ctx.idPrefix || "setting-"}${path.replace(/[^a-zA-Z0-9_-]/g, "-")}`;
}

function humanize(key) {
  return key.replace(/_/g, " ").replace(/^./, (c) => c.toUpperCase());
}

function rangeHint(schema) {
  const parts = [];
  if (schema.minimum !== undefined) parts.push(`at least ${schema.minimum}`);
  if (schema.exclusiveMinimum !== undefined) parts.push(`more than ${schema.exclusiveMinimum}`);
  if (schema.maximum !== undefined) parts.push(`at most ${schema.maximum}`);
  if (schema.exclusiveMaximum !== undefined) parts.push(`less than ${schema.exclusiveMaximum}`);
  if (schema.minimum !== undefined && schema.maximum !== undefined) return `from ${schema.minimum} to ${schema.maximum}`;
  return parts.join(", ");
}

/** One leaf field: label, control, hint and its error line; `read()` answers the value or undefined. */
function leaf(path, key, schema, value, required, ctx, fields) {
  const id = domId(path, ctx);
  const title = schema.title || humanize(key);
  const error = h("p", { class: "field-error", id: `${id}-error` });
  const hintText = [schema.description, schema.type === "number" || schema.type === "integer" ? rangeHint(schema) : ""]
    .filter(Boolean).join(" · ");
  const hint = hintText ? h("p", { class: "field-hint", id: `${id}-hint` }, hintText) : null;
  const described = [hint ? `${id}-hint` : null, `${id}-error`].filter(Boolean).join(" ");
  const initial = value !== undefined ? value : schema.default;
  let control;
  let read;
  let focusable;

  if (schema.type === "string" && schema.format === "uuid" && key.endsWith("media_id")) {
    let mediaId = value || null;
    const zone = dropZone({
      id, label: title, hint: schema.description,
      previewUrl: mediaId ? ctx.mediaUrl(mediaId) : null,
      onFile: async (file) => {
        mediaId = null;
        mediaId = await ctx.uploadMedia(file);
      },
      onRemove: () => {
        mediaId = null;
      },
    });
    fields.set(path, { read: () => mediaId || undefined, setError: zone.setError, focus: zone.focus, required });
    return h("div", { class: "field", dataset: { path } },
      h("label", { id: `${id}-label` }, title, required ? " *" : ""), zone.element);
  }

  if (schema.type === "boolean") {
    const box = h("input", { id, type: "checkbox", "aria-describedby": described });
    box.checked = Boolean(initial);
    fields.set(path, { read: () => box.checked, setError: (m) => setFieldError(box, error, m), focus: () => box.focus(),
      required });
    return h("div", { class: "field", dataset: { path } },
      h("label", { class: "switch", for: id }, box, title), hint, error);
  }

  if (Array.isArray(schema.enum)) {
    control = h("select", { id, "aria-describedby": described });
    if (!required && schema.default === undefined) control.append(h("option", { value: "" }, "— not set —"));
    if (required && initial === undefined) control.append(h("option", { value: "" }, "Choose…"));
    for (const option of schema.enum) control.append(h("option", { value: String(option) }, String(option)));
    control.value = initial !== undefined ? String(initial) : "";
    read = () => {
      if (control.value === "") return undefined;
      const match = schema.enum.find((option) => String(option) === control.value);
      return match;
    };
  } else if (schema["x-control"] === "range" && schema.minimum !== undefined && schema.maximum !== undefined) {
    // A slider (this page's own schemas ask for one): always a value, shown beside it as it moves.
    const shown = h("output", { for: id, class: "range-value" });
    const slider = h("input", { id, type: "range", min: schema.minimum, max: schema.maximum,
      step: schema.step || "any", "aria-describedby": described });
    slider.value = String(initial ?? schema.minimum);
    const sync = () => {
      shown.textContent = slider.value;
    };
    slider.addEventListener("input", sync);
    sync();
    control = h("div", { class: "range-row" }, slider, shown);
    focusable = slider;
    read = () => Number(slider.value);
  } else if (schema.type === "number" || schema.type === "integer") {
    const min = schema.minimum ?? schema.exclusiveMinimum;
    const max = schema.maximum ?? schema.exclusiveMaximum;
    control = h("input", { id, type: "number", inputmode: schema.type === "integer" ? "numeric" : "decimal",
      step: schema.type === "integer" ? "1" : "any", min, max, "aria-describedby": described });
    control.value = initial !== undefined ? String(initial) : "";
    read = () => {
      if (control.value.trim() === "") return undefined;
      const number = Number(control.value);
      if (!Number.isFinite(number)) throw new Error("must be a number");
      if (schema.type === "integer" && !Number.isInteger(number)) throw new Error("must be a whole number");
      return number;
    };
  } else if (schema.type === "array") {
    // Coordinates (a box, a list of points) typed as JSON: `[x_min, y_min, x_max, y_max]`, `[[x, y], [x, y]]`.
    control = h("input", { id, type: "text", placeholder: schema.examples ? JSON.stringify(schema.examples[0]) : "[…]",
      "aria-describedby": described, spellcheck: "false" });
    control.value = initial !== undefined ? JSON.stringify(initial) : "";
    read = () => {
      if (control.value.trim() === "") return undefined;
      let parsed;
      try {
        parsed = JSON.parse(control.value);
      } catch {
        throw new Error("must be a JSON list, e.g. [10, 20, 300, 400]");
      }
      if (!Array.isArray(parsed)) throw new Error("must be a JSON list, e.g. [10, 20, 300, 400]");
      return parsed;
    };
  } else if (schema.pattern === COLOR) {
    control = h("input", { id, type: "color", "aria-describedby": described });
    control.value = initial || "#ffffff";
    read = () => control.value;
  } else {
    const long = key === "prompt" || (schema.maxLength || 0) > 300;
    control = h(long ? "textarea" : "input", { id, type: long ? undefined : "text", maxlength: schema.maxLength,
      "aria-describedby": described });
    control.value = initial !== undefined ? String(initial) : "";
    read = () => (control.value === "" ? undefined : control.value);
  }
  focusable ||= control;
  fields.set(path, {
    read,
    setError: (message) => setFieldError(focusable, error, message),
    focus: () => focusable.focus(),
    required,
  });
  return h("div", { class: "field", dataset: { path } },
    h("label", { for: id }, title, required ? " *" : ""), control, hint, error);
}

function objectFields(schema, values, prefix, ctx, fields, root) {
  const required = new Set(schema.required || []);
  const nodes = [];
  for (const [key, raw] of Object.entries(schema.properties || {})) {
    const sub = resolve(raw, root);
    const path = prefix ? `${prefix}/${key}` : key;
    const value = values ? values[key] : undefined;
    if (sub.type === "object" && sub.properties) {
      const legend = sub.title || humanize(key);
      nodes.push(h("fieldset", { dataset: { path } }, h("legend", {}, legend),
        objectFields(sub, value || {}, path, ctx, fields, root)));
    } else {
      nodes.push(leaf(path, key, sub, value, required.has(key), ctx, fields));
    }
  }
  return nodes;
}

/**
 * Build the form for `schema` filled with `values`. `ctx.uploadMedia(file)` stores an image and answers its
 * media id; `ctx.mediaUrl(id)` is where a stored image can be shown; `ctx.idPrefix` starts every control's id
 * ("setting-" when not given). Answers {element, collect, showErrors}.
 */
export function schemaForm(schema, values, ctx) {
  const fields = new Map();
  const element = h("div", { class: "schema-form" }, objectFields(schema || {}, values || {}, "", ctx, fields, schema));

  /** The settings object, and the problems found before sending it ([{field, message}]). */
  function collect() {
    const value = {};
    const problems = [];
    for (const [path, field] of fields) {
      field.setError("");
      let v;
      try {
        v = field.read();
      } catch (err) {
        problems.push({ field: path, message: err.message });
        continue;
      }
      if (v === undefined) {
        if (field.required && !path.includes("/")) problems.push({ field: path, message: "required" });
        continue;
      }
      const keys = path.split("/");
      let node = value;
      for (const k of keys.slice(0, -1)) node = node[k] ||= {};
      node[keys.at(-1)] = v;
    }
    return { value, problems };
  }

  /** Show the problems at their fields; answers those that belong to no field here. */
  function showErrors(problems) {
    const rest = [];
    let first = null;
    for (const p of problems) {
      const field = fields.get(p.field);
      if (field) {
        field.setError(p.message);
        first ||= field;
      } else {
        rest.push(p);
      }
    }
    if (first) first.focus();
    return rest;
  }

  return { element, collect, showErrors };
}
