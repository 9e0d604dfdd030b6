/**
 * A strict XML well-formedness check for the SVGs vmsim writes (no parser
 * dependency): one root element, every tag closed in order, attributes
 * quoted and not repeated, names well-formed, `&` only in the five
 * predefined entities or character references, no `<` in text or
 * attribute values, comments and the XML declaration allowed. Returns the
 * element tree, or throws saying where the document is not well-formed.
 */

export interface XmlElement {
  readonly name: string;
  readonly attrs: Readonly<Record<string, string>>;
  readonly children: XmlElement[];
  /** The element's own text (entities decoded), its children's not included. */
  text: string;
}

const NAME = /^[A-Za-z_:][A-Za-z0-9_:.-]*$/;
const ENTITIES: Readonly<Record<string, string>> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/** Decodes the references in `s`; throws on a bare `&`, an unknown entity or a `<`. */
function decode(s: string, where: string): string {
  if (s.includes("<")) throw new Error(`${where}: a raw "<"`);
  return s.replace(/&([^;\s]*);?/g, (all, ref: string) => {
    if (!all.endsWith(";")) throw new Error(`${where}: a bare "&" (${JSON.stringify(all)})`);
    if (ref in ENTITIES) return ENTITIES[ref]!;
    const m = /^#(?:x([0-9A-Fa-f]+)|([0-9]+))$/.exec(ref);
    if (m === null) throw new Error(`${where}: unknown entity &${ref};`);
    return String.fromCodePoint(m[1] !== undefined ? Number.parseInt(m[1], 16) : Number(m[2]));
  });
}

/** Parses a start tag's inside (after the name): name="value" pairs, separated by white space. */
function attributes(s: string, where: string): Record<string, string> {
  const out: Record<string, string> = {};
  let rest = s;
  while ((rest = rest.trimStart()) !== "") {
    const m = /^([^\s=]+)\s*=\s*("([^"]*)"|'([^']*)')/.exec(rest);
    if (m === null) throw new Error(`${where}: malformed attribute at ${JSON.stringify(rest.slice(0, 30))}`);
    const name = m[1]!;
    if (!NAME.test(name)) throw new Error(`${where}: bad attribute name ${JSON.stringify(name)}`);
    if (Object.hasOwn(out, name)) throw new Error(`${where}: attribute ${name} twice`);
    out[name] = decode(m[3] ?? m[4]!, `${where} ${name}=`);
    rest = rest.slice(m[0].length);
    if (rest !== "" && !/^\s/.test(rest)) throw new Error(`${where}: no space after attribute ${name}`);
  }
  return out;
}

/** The index of the ">" that ends the tag opened at `lt` (one inside quotes does not), -1 for none. */
function tagEnd(doc: string, lt: number): number {
  let quote = "";
  for (let i = lt + 1; i < doc.length; i++) {
    const ch = doc[i]!;
    if (quote !== "") {
      if (ch === quote) quote = "";
    } else if (ch === '"' || ch === "'") quote = ch;
    else if (ch === ">") return i;
  }
  return -1;
}

/** The root element of `doc`; throws when `doc` is not well-formed XML. */
export function parseXml(doc: string): XmlElement {
  let at = 0;
  const stack: XmlElement[] = [];
  let root: XmlElement | null = null;
  const line = (i: number) => `line ${doc.slice(0, i).split("\n").length}`;
  if (doc.startsWith("<?xml")) {
    const end = doc.indexOf("?>");
    if (end < 0) throw new Error("unterminated XML declaration");
    at = end + 2;
  }
  while (at < doc.length) {
    const lt = doc.indexOf("<", at);
    const textEnd = lt < 0 ? doc.length : lt;
    const chunk = doc.slice(at, textEnd);
    const top = stack.at(-1);
    if (top !== undefined) top.text += decode(chunk, line(at));
    else if (chunk.trim() !== "") throw new Error(`${line(at)}: text outside the root element`);
    if (lt < 0) break;
    if (doc.startsWith("<!--", lt)) {
      const end = doc.indexOf("-->", lt + 4);
      if (end < 0) throw new Error(`${line(lt)}: unterminated comment`);
      at = end + 3;
      continue;
    }
    const gt = tagEnd(doc, lt);
    if (gt < 0) throw new Error(`${line(lt)}: unterminated tag`);
    const inside = doc.slice(lt + 1, gt);
    if (inside.startsWith("/")) {
      const name = inside.slice(1).trim();
      const open = stack.pop();
      if (open === undefined || open.name !== name)
        throw new Error(`${line(lt)}: </${name}> closes ${open ? `<${open.name}>` : "nothing"}`);
    } else {
      const selfClosing = inside.endsWith("/");
      const body = selfClosing ? inside.slice(0, -1) : inside;
      const m = /^(\S+)([\s\S]*)$/.exec(body);
      if (m === null || !NAME.test(m[1]!)) throw new Error(`${line(lt)}: bad tag <${inside.slice(0, 20)}`);
      const el: XmlElement = { name: m[1]!, attrs: attributes(m[2]!, line(lt)), children: [], text: "" };
      if (m[2] !== "" && !/^\s/.test(m[2]!)) throw new Error(`${line(lt)}: no space after the tag name`);
      const parent = stack.at(-1);
      if (parent !== undefined) parent.children.push(el);
      else if (root !== null) throw new Error(`${line(lt)}: a second root element <${el.name}>`);
      else root = el;
      if (!selfClosing) stack.push(el);
    }
    at = gt + 1;
  }
  if (stack.length > 0) throw new Error(`<${stack.at(-1)!.name}> is never closed`);
  if (root === null) throw new Error("no root element");
  return root;
}

/** Every element under `el` (itself included), depth first. */
export function allElements(el: XmlElement): XmlElement[] {
  return [el, ...el.children.flatMap(allElements)];
}
