/**
 * One line of an op script (the contract of `vmsim exec`, docs/exec.md): its op table and
 * validation, shared by `vmsim exec` (src/cli/exec.ts) and the script scenario
 * of `vmsim explore --script` (src/explore/script.ts), which accept the same lines.
 */
import { type Layout, formatKaddr, parseKaddr } from "../shared/layouts.js";

/** Largest `len` of a read and byte count of a write: 1 MiB. */
export const EXEC_MAX_IO = 1 << 20;

type ArgKind = "bytes" | "align" | "count" | "offset" | "len" | "hex" | "label";

interface ArgSpec {
  readonly kind: ArgKind;
  readonly required: boolean;
}

/** An op's arguments; `target` ops take a `ref` (label) or an `addr` (hex), exactly one. */
interface OpSpec {
  readonly args: Readonly<Record<string, ArgSpec>>;
  readonly target: boolean;
}

const req = (kind: ArgKind): ArgSpec => ({ kind, required: true });
const opt = (kind: ArgKind): ArgSpec => ({ kind, required: false });

/** docs/exec.md's op table. */
// biome-ignore-start lint/style/useNamingConvention: the op names are docs/exec.md's (the kernel's function names)
const OPS = {
  vmalloc: { args: { size: req("bytes"), align: opt("align"), as: opt("label") }, target: false },
  vzalloc: { args: { size: req("bytes"), as: opt("label") }, target: false },
  vfree: { args: {}, target: true },
  vmap: { args: { pages: req("count"), as: opt("label") }, target: false },
  vunmap: { args: {}, target: true },
  vm_map_ram: { args: { pages: req("count"), as: opt("label") }, target: false },
  vm_unmap_ram: { args: { pages: req("count") }, target: true },
  write: { args: { offset: req("offset"), hex: req("hex") }, target: true },
  read: { args: { offset: req("offset"), len: req("len") }, target: true },
  purge: { args: {}, target: false },
  flush_work: { args: {}, target: false },
  vmallocinfo: { args: {}, target: false },
  meminfo: { args: {}, target: false },
  check: { args: {}, target: false },
} as const satisfies Record<string, OpSpec>;
// biome-ignore-end lint/style/useNamingConvention: the op names are docs/exec.md's (the kernel's function names)

export type OpName = keyof typeof OPS;

const OP_NAMES = Object.keys(OPS) as OpName[];
/** Keys every line may have. */
const COMMON_KEYS = new Set(["op", "cpu", "irq"]);

/** A line that parsed: its op, arguments (numbers, strings), target kaddr, CPU and context. */
export interface ParsedOp {
  readonly op: OpName;
  readonly args: Readonly<Record<string, number | string>>;
  /** The kaddr a `ref` or `addr` names (target ops). */
  readonly target: number;
  readonly cpu: number;
  readonly irq: boolean;
}

/** A malformed line: the problem, in words. */
export class LineError extends Error {}

export const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

function show(v: unknown): string {
  return JSON.stringify(v) ?? String(v);
}

/** Checks one argument's JSON value against its kind; returns the value. */
function argValue(op: string, name: string, kind: ArgKind, v: unknown): number | string {
  const fail = (what: string) => new LineError(`${op}: "${name}" must be ${what}, got ${show(v)}`);
  switch (kind) {
    case "bytes":
    case "offset":
      if (!Number.isSafeInteger(v) || (v as number) < 0) throw fail("a non-negative integer (bytes)");
      return v as number;
    case "align":
      if (!Number.isSafeInteger(v) || (v as number) < 1 || !Number.isInteger(Math.log2(v as number)))
        throw fail("a power of two (bytes)");
      return v as number;
    case "count":
      if (!Number.isSafeInteger(v) || (v as number) < 0 || (v as number) > 0xffffffff)
        throw fail("a page count (an integer in 0..4294967295)");
      return v as number;
    case "len":
      if (!Number.isSafeInteger(v) || (v as number) < 0 || (v as number) > EXEC_MAX_IO)
        throw fail(`a byte count in 0..${EXEC_MAX_IO}`);
      return v as number;
    case "hex":
      if (typeof v !== "string" || !/^(?:[0-9a-fA-F]{2})*$/.test(v) || v.length > 2 * EXEC_MAX_IO)
        throw fail(`bytes as a hex string of at most ${EXEC_MAX_IO} bytes (an even number of hex digits)`);
      return v;
    case "label":
      if (typeof v !== "string" || v === "") throw fail("a label (a non-empty string)");
      return v;
  }
}

/** The kaddr a `ref` or `addr` names. */
function targetOf(op: string, o: Record<string, unknown>, labels: ReadonlyMap<string, number>, layout: Layout): number {
  const hasRef = "ref" in o;
  const hasAddr = "addr" in o;
  if (hasRef && hasAddr) throw new LineError(`${op}: give "ref" or "addr", not both`);
  if (hasRef) {
    const ref = o["ref"];
    if (typeof ref !== "string" || ref === "") throw new LineError(`${op}: "ref" must be a label, got ${show(ref)}`);
    const addr = labels.get(ref);
    if (addr === undefined) throw new LineError(`${op}: unknown label ${show(ref)}`);
    return addr;
  }
  if (hasAddr) {
    const addr = o["addr"];
    const kaddr = typeof addr === "string" ? parseAddr(layout, addr) : null;
    if (kaddr === null)
      throw new LineError(
        `${op}: "addr" must be a kernel virtual address as a hex string such as ${show(formatKaddr(layout, layout.vmallocStart))}, got ${show(addr)}`,
      );
    return kaddr;
  }
  throw new LineError(`${op}: missing "ref" (a label) or "addr" (a hex address)`);
}

/** A hex kernel address as a kaddr; "0x0" is NULL (kaddr 0, which no area ever starts at). */
function parseAddr(layout: Layout, hex: string): number | null {
  if (/^0x0+$/i.test(hex)) return 0;
  return parseKaddr(layout, hex);
}

/** Validates one line (already JSON); throws LineError naming the problem. */
export function parseOp(
  o: Record<string, unknown>,
  cpus: number,
  labels: ReadonlyMap<string, number>,
  layout: Layout,
): ParsedOp {
  if (!("op" in o)) throw new LineError('missing "op"');
  const name = o["op"];
  if (typeof name !== "string") throw new LineError(`"op" must be a string, got ${show(name)}`);
  if (!Object.hasOwn(OPS, name))
    throw new LineError(`unknown op ${show(name)}; expected one of ${OP_NAMES.join(", ")}`);
  const op = name as OpName;
  const spec: OpSpec = OPS[op];
  let cpu = 0;
  if ("cpu" in o) {
    const c = o["cpu"];
    if (!Number.isSafeInteger(c)) throw new LineError(`"cpu" must be an integer, got ${show(c)}`);
    if ((c as number) < 0 || (c as number) >= cpus)
      throw new LineError(`no CPU ${c as number} (the machine has ${cpus}: 0..${cpus - 1})`);
    cpu = c as number;
  }
  let irq = false;
  if ("irq" in o) {
    if (typeof o["irq"] !== "boolean") throw new LineError(`"irq" must be true or false, got ${show(o["irq"])}`);
    irq = o["irq"];
  }
  for (const k of Object.keys(o)) {
    // Own keys only: "toString" or "__proto__" is no argument of any op.
    const known = COMMON_KEYS.has(k) || Object.hasOwn(spec.args, k) || (spec.target && (k === "ref" || k === "addr"));
    if (!known) throw new LineError(`${op}: unknown argument ${show(k)}`);
  }
  const args: Record<string, number | string> = {};
  for (const [k, a] of Object.entries(spec.args)) {
    if (!(k in o)) {
      if (a.required) throw new LineError(`${op}: missing ${show(k)}`);
      continue;
    }
    args[k] = argValue(op, k, a.kind, o[k]);
  }
  const target = spec.target ? targetOf(op, o, labels, layout) : 0;
  return { op, args, target, cpu, irq };
}
