/**
 * exec_script: one CPU's lines of an op script (docs/exec.md), run in order in one
 * call — the script scenario of `vmsim explore`, where every CPU runs its own
 * lines at once under the deterministic scheduler (`vmsim exec` runs the same
 * lines one at a time). Labels (`as`, `ref`) are this CPU's own; a line whose
 * label is unknown when it runs (its allocation failed, or the shrinker left
 * it out) is skipped. The pages behind vmap and vm_map_ram are held and freed
 * as exec does them (src/workers/workloads/exec.ts).
 */
import { theArena } from "../../shared/arena.js";
import { PAGE_SIZE, layoutOf } from "../../shared/config.js";
import { parseKaddr } from "../../shared/layouts.js";
import { type ExecReply, type ExecRequest, type HeldPages, execOp } from "./exec.js";
import { defineWorkload } from "../workload.js";

/** A validated script line (docs/exec.md's JSON object; `cpu` already used to pick the CPU). */
export interface ScriptLine {
  readonly op: string;
  readonly [arg: string]: unknown;
}

/** What one line did: its reply, or why it was skipped. */
export type ScriptResult = ExecReply | { readonly skipped: string };

interface Args {
  readonly lines: readonly ScriptLine[];
  /** Line numbers (0-based) to leave out. */
  readonly skip: readonly number[];
}

defineWorkload("exec_script", (a: Args): ScriptResult[] => {
  const layout = layoutOf(theArena().config);
  const labels = new Map<string, number>();
  const vmapHeld = new Map<number, HeldPages>();
  const ramHeld = new Map<number, HeldPages>();
  const skip = new Set(a.skip);
  const out: ScriptResult[] = [];
  const targetOf = (l: ScriptLine): number | null => {
    if (typeof l["ref"] === "string") return labels.get(l["ref"]) ?? null;
    return typeof l["addr"] === "string" ? parseKaddr(layout, l["addr"]) : null;
  };
  const heldAt = (addr: number): HeldPages | null => {
    for (const h of vmapHeld.values()) if (addr >= h.start && addr < h.start + h.count * PAGE_SIZE) return h;
    return null;
  };
  a.lines.forEach((l, i) => {
    if (skip.has(i)) return;
    const irq = l["irq"] === true;
    const num = (k: string) => l[k] as number;
    let req: ExecRequest;
    const target = targetOf(l);
    const needsTarget = ["vfree", "vunmap", "vm_unmap_ram", "write", "read"].includes(l.op);
    if (needsTarget && target === null) {
      out.push({ skipped: `unknown label ${String(l["ref"])} on this CPU` });
      return;
    }
    const t = target ?? 0;
    switch (l.op) {
      case "vmalloc":
        req = { op: "vmalloc", size: num("size"), align: (l["align"] as number | undefined) ?? null, irq };
        break;
      case "vzalloc":
        req = { op: "vzalloc", size: num("size"), irq };
        break;
      case "vfree":
      case "vunmap":
        req = { op: l.op, addr: t, irq, held: heldAt(t) };
        break;
      case "vmap":
      case "vm_map_ram":
        req = { op: l.op, count: num("pages"), irq };
        break;
      case "vm_unmap_ram": {
        const h = ramHeld.get(t);
        req = { op: "vm_unmap_ram", addr: t, count: num("pages"), irq, held: h?.count === num("pages") ? h : null };
        break;
      }
      case "write":
        req = { op: "write", addr: t + num("offset"), hex: l["hex"] as string, irq, nullBase: t === 0 };
        break;
      case "read":
        req = { op: "read", addr: t + num("offset"), len: num("len"), irq, nullBase: t === 0 };
        break;
      case "purge":
      case "flush_work":
      case "vmallocinfo":
      case "meminfo":
        req = { op: l.op, irq };
        break;
      default:
        out.push({ skipped: `${l.op} does not run inside a concurrent script` });
        return;
    }
    const r = execOp(req);
    if (r.addr !== undefined && r.addr !== 0 && typeof l["as"] === "string") labels.set(l["as"], r.addr);
    if (r.held) (l.op === "vmap" ? vmapHeld : ramHeld).set(r.held.start, r.held);
    if (req.op === "vm_unmap_ram" && req.held) ramHeld.delete(req.held.start);
    for (const start of r.released ?? []) vmapHeld.delete(start);
    out.push(r);
  });
  return out;
});
