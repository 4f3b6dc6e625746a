// The slot page's finishing section (issue 14 item 4): what is done to the chain's final image — exact size for a
// print window (fit, fill or pad with a colour), sharpening, an overlay image (frame or logo), format, quality and
// a byte cap. Every field is optional: an empty section sends {} (nothing is done). The form is the settings form
// (schema-form.js) of the schema below, which mirrors the server's FINISHING_SCHEMA (boothbridge/images/
// finishing.py; the server validates); ids are "finishing-<field>", errors arrive at "finishing/<field>".
import { schemaForm } from "./schema-form.js";

const SCHEMA = {
  type: "object",
  properties: {
    width: { type: "integer", title: "Width (px)", minimum: 1, maximum: 20000,
      description: "The print window's width. Width alone, or height alone, scales keeping the aspect ratio." },
    height: { type: "integer", title: "Height (px)", minimum: 1, maximum: 20000 },
    fit: { type: "string", title: "Fit", enum: ["fit", "fill", "pad"],
      description: "fit: inside the box; fill: cover the box and crop; pad: inside the box, padded to its size." },
    pad_color: { type: "string", title: "Padding colour", pattern: "^#[0-9a-fA-F]{6}$", default: "#ffffff",
      description: "Used with pad." },
    sharpen: { type: "number", title: "Sharpen", minimum: 0, maximum: 1, step: 0.05, default: 0, "x-control": "range",
      description: "After resizing; 0 is none." },
    overlay_media_id: { type: "string", format: "uuid", title: "Overlay image",
      description: "A PNG frame or logo with transparency, placed over the result at its size." },
    format: { type: "string", title: "Format", enum: ["jpeg", "png"], description: "Not set: as the image comes." },
    quality: { type: "integer", title: "Quality", minimum: 1, maximum: 100 },
    max_bytes: { type: "integer", title: "Largest file (bytes)", minimum: 10000,
      description: "Met by lowering the quality, then the size; e.g. 1500000 for 1.5 MB." },
  },
};

/** The section in `holder`; `ctx` {uploadMedia, mediaUrl}. Answers {load, collect, showErrors}. */
export function finishingEditor(holder, ctx) {
  let form = null;

  return {
    /** Show a slot's finishing object ({} or absent: nothing set). */
    load(finishing) {
      form = schemaForm(SCHEMA, finishing || {}, { ...ctx, idPrefix: "finishing-" });
      holder.replaceChildren(form.element);
    },
    /** {value, problems}: the finishing object with only what is set; problems at "finishing/<field>". */
    collect() {
      const { value, problems } = form.collect();
      // A colour input and a slider always hold a value: they count only where they do something.
      if (value.fit !== "pad") delete value.pad_color;
      if (!value.sharpen) delete value.sharpen;
      return { value, problems: problems.map((p) => ({ ...p, field: `finishing/${p.field}` })) };
    },
    /** Show problems at "finishing/<field>" at their fields; answers the others. */
    showErrors(problems) {
      const mine = problems.filter((p) => p.field.startsWith("finishing/"));
      const unplaced = form.showErrors(mine.map((p) => ({ ...p, field: p.field.slice("finishing/".length) })));
      return [...problems.filter((p) => !p.field.startsWith("finishing/")),
        ...unplaced.map((p) => ({ ...p, field: `finishing/${p.field}` }))];
    },
  };
}
