/**
 * XML for libvirt: a tiny pure renderer (every attribute value and text escaped, attributes in the order given,
 * two-space indentation, byte-identical output for the same input) and a reader that turns what virsh prints
 * (dumpxml) into plain objects through @xmldom/xmldom.
 */
import { DOMParser, type Element, type Node } from "@xmldom/xmldom";

/** An element: tag, attributes (undefined ones are left out), children (undefined/false ones are left out). */
export interface XElement {
  tag: string;
  attrs: Array<[string, string]>;
  children: XElement[];
  text?: string;
}

export type AttrValue = string | number | boolean | undefined;
export type Child = XElement | undefined | false;

export function escapeXml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => {
    switch (c) {
      case "&":
        return "&amp;";
      case "<":
        return "&lt;";
      case ">":
        return "&gt;";
      case '"':
        return "&quot;";
      default:
        return "&apos;";
    }
  });
}

/** el("ip", {address: "10.0.0.1", prefix: 24}, el("dhcp")) */
export function el(tag: string, attrs: Record<string, AttrValue> = {}, ...children: Child[]): XElement {
  const list: Array<[string, string]> = [];
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined) list.push([k, typeof v === "boolean" ? (v ? "yes" : "no") : String(v)]);
  }
  return { tag, attrs: list, children: children.filter((c): c is XElement => Boolean(c)) };
}

/** An element holding only text: textEl("name", "lab-private"). */
export function textEl(tag: string, text: string | number, attrs: Record<string, AttrValue> = {}): XElement {
  return { ...el(tag, attrs), text: String(text) };
}

function renderElement(e: XElement, depth: number, out: string[]): void {
  const pad = "  ".repeat(depth);
  const attrs = e.attrs.map(([k, v]) => ` ${k}="${escapeXml(v)}"`).join("");
  if (e.text !== undefined) {
    out.push(`${pad}<${e.tag}${attrs}>${escapeXml(e.text)}</${e.tag}>`);
  } else if (e.children.length === 0) {
    out.push(`${pad}<${e.tag}${attrs}/>`);
  } else {
    out.push(`${pad}<${e.tag}${attrs}>`);
    for (const c of e.children) renderElement(c, depth + 1, out);
    out.push(`${pad}</${e.tag}>`);
  }
}

export function renderXml(root: XElement): string {
  const out: string[] = [];
  renderElement(root, 0, out);
  return `${out.join("\n")}\n`;
}

/** What parseXml returns: element names with their namespace prefix as written (e.g. "dnsmasq:option"). */
export interface XNode {
  tag: string;
  attrs: Record<string, string>;
  children: XNode[];
  /** Concatenated text of the direct text children, trimmed. */
  text: string;
}

/** Parses a document (virsh output); throws on malformed XML. */
export function parseXml(text: string): XNode {
  const errors: string[] = [];
  const doc = new DOMParser({
    onError: (level: string, message: string) => {
      if (level !== "warning") errors.push(message);
    },
  }).parseFromString(text, "text/xml");
  const root = doc.documentElement;
  if (errors.length > 0 || !root) throw new Error(`malformed XML: ${errors[0] ?? "no root element"}`);
  // Node types: 1 element, 3 text, 4 CDATA.
  const convert = (node: Element): XNode => {
    const attrs: Record<string, string> = {};
    for (let i = 0; i < node.attributes.length; i++) {
      const a = node.attributes.item(i);
      if (a) attrs[a.name] = a.value;
    }
    const children: XNode[] = [];
    let txt = "";
    for (let c: Node | null = node.firstChild; c; c = c.nextSibling) {
      if (c.nodeType === 1) children.push(convert(c as Element));
      else if (c.nodeType === 3 || c.nodeType === 4) txt += c.nodeValue ?? "";
    }
    return { tag: node.tagName, attrs, children, text: txt.trim() };
  };
  return convert(root);
}

export function child(node: XNode | undefined, tag: string): XNode | undefined {
  return node?.children.find((c) => c.tag === tag);
}

export function childrenOf(node: XNode | undefined, tag: string): XNode[] {
  return node ? node.children.filter((c) => c.tag === tag) : [];
}

/** child(child(root, "a"), "b") as path(root, "a", "b"). */
export function path(node: XNode | undefined, ...tags: string[]): XNode | undefined {
  let cur = node;
  for (const t of tags) cur = child(cur, t);
  return cur;
}
