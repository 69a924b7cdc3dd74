/**
 * The one place the catalog pages produce HTML. Why a tagged template and not a template engine or
 * a front-end framework: the pages are a few tables rendered on the server, a tagged template is
 * plain TypeScript (type-checked, no build step, no dependency, nothing to load at start), and it
 * escapes every interpolated value by default — only what was itself built by `html` (or a fixed
 * string marked with `trusted`) goes in unescaped, so no call site escapes by hand.
 */

/** Markup built by `html`: safe to put in a page as is. */
export class Html {
  readonly text: string;

  constructor(text: string) {
    this.text = text;
  }

  toString(): string {
    return this.text;
  }
}

/** What a template may interpolate: text (escaped), markup, nothing, or a list of them. */
export type Interpolation = Html | string | number | boolean | null | undefined | readonly Interpolation[];

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/**
 * Text escaped for an element's content and for a quoted attribute value alike (both quote
 * characters are escaped, so a value cannot end the attribute it sits in).
 */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (char) => ESCAPES[char] ?? char);
}

/**
 * `html\`<td>${name}</td>\`` → Html with `name` escaped. Arrays are joined, `null`, `undefined`
 * and `false` render as nothing (for `${cond && html\`…\`}`), other values as escaped text.
 * Attribute values must be quoted in the template (`href="${url}"`): an unquoted value could be
 * split at a space. URLs from data go through `httpUrl` first.
 */
export function html(strings: TemplateStringsArray, ...values: Interpolation[]): Html {
  let out = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) out += render(values[i]) + (strings[i + 1] ?? '');
  return new Html(out);
}

/** A fixed string of markup written in this code (never data): the doctype, an entity. */
export function trusted(markup: string): Html {
  return new Html(markup);
}

/**
 * The URL when it is an absolute http(s) URL, else undefined: a label such as
 * org.opencontainers.image.source becomes a link only then (never `javascript:`, `data:`, …).
 */
export function httpUrl(value: string): string | undefined {
  if (!/^https?:\/\//i.test(value)) return undefined;
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : undefined;
  } catch {
    return undefined;
  }
}

function render(value: Interpolation): string {
  if (value instanceof Html) return value.text;
  if (value === null || value === undefined || value === false) return '';
  if (Array.isArray(value)) return value.map(render).join('');
  return escapeHtml(String(value));
}
