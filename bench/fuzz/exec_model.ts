/**
 * Which fuzzed exec scripts must leave the machine consistent. The kernel
 * trusts its callers in places: vm_unmap_ram of a vmalloc'd area, vunmap of
 * one (its pages leak), a write past an area's end, a deferred vfree of an
 * address that is no area (its llist node is written there) corrupt state
 * without a word, as they would on a real kernel — and then the invariant
 * check rightly reports it. This model follows the script's areas from its
 * answers and names the first such misuse; a script without one that ended
 * cleanly must pass the check.
 */
import { LineError, isObject, parseOp } from "../../src/workers/exec_op.js";
import { PAGE_SIZE } from "../../src/shared/config.js";
import { type LayoutName, layoutFor, parseKaddr } from "../../src/shared/layouts.js";

type Kind = "vmalloc" | "vmap" | "vm_map_ram";

interface Area {
  readonly kind: Kind;
  readonly size: number;
}

/** Which ops may free an area of each kind (vfree of a vmap area is the kernel's __vunmap of it). */
const FREED_BY: Readonly<Record<string, readonly Kind[]>> = {
  vfree: ["vmalloc", "vmap"],
  vunmap: ["vmap"],
  vm_unmap_ram: ["vm_map_ram"],
};

/**
 * The first line (its text and why) of the script that misuses the API in a
 * way the kernel does not check; null when the script has none. `inputs` are
 * the script's non-blank lines, `answers` the parsed answers to them.
 */
export function firstMisuse(
  layoutName: LayoutName,
  cpus: number,
  inputs: readonly string[],
  answers: readonly Record<string, unknown>[],
): string | null {
  const layout = layoutFor("4.19", layoutName);
  const live = new Map<number, Area>();
  const labels = new Map<string, number>();
  /** Areas whose deferred vfree waits for flush_work: their first bytes are its llist node. */
  const deferred = new Set<number>();
  const inside = (addr: number) => [...live].find(([start, a]) => addr >= start && addr < start + a.size);
  for (let i = 0; i < inputs.length; i++) {
    let o: unknown;
    try {
      o = JSON.parse(inputs[i]!);
    } catch {
      continue;
    }
    if (!isObject(o)) continue;
    let p: ReturnType<typeof parseOp>;
    try {
      p = parseOp(o, cpus, labels, layout);
    } catch (e) {
      if (e instanceof LineError) continue;
      throw e;
    }
    const misuse = (why: string) => `${inputs[i]}: ${why}`;
    const a = answers[i]!;
    if (p.target !== 0 && deferred.has(p.target) && p.op !== "read")
      return misuse(`${p.op} of an area whose deferred vfree has not run`);
    switch (p.op) {
      case "vmalloc":
      case "vzalloc":
      case "vmap":
      case "vm_map_ram": {
        const addr = typeof a["addr"] === "string" ? parseKaddr(layout, a["addr"]) : null;
        const as = p.args["as"];
        // A label whose allocation returned NULL names NULL (docs/exec.md).
        if (addr === null || addr === 0) {
          if (typeof as === "string") labels.set(as, 0);
          break;
        }
        const bytes =
          p.op === "vmalloc" || p.op === "vzalloc"
            ? (p.args["size"] as number)
            : (p.args["pages"] as number) * PAGE_SIZE;
        live.set(addr, {
          kind: p.op === "vzalloc" ? "vmalloc" : p.op,
          size: Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE,
        });
        if (typeof as === "string") labels.set(as, addr);
        break;
      }
      case "vfree":
      case "vunmap":
      case "vm_unmap_ram": {
        const t = p.target;
        if (t === 0 && p.op !== "vm_unmap_ram") break;
        const area = live.get(t);
        if (area !== undefined) {
          if (!FREED_BY[p.op]!.includes(area.kind)) return misuse(`${p.op} of a ${area.kind} area`);
          if (p.op === "vm_unmap_ram" && (p.args["pages"] as number) * PAGE_SIZE !== area.size)
            return misuse("vm_unmap_ram with another page count than vm_map_ram's");
          live.delete(t);
          if (p.irq) deferred.add(t);
          break;
        }
        // No area starts there: the kernel warns and changes nothing — unless it finds one around it.
        if (p.irq) return misuse("a deferred vfree of an address no area starts at");
        if (inside(t) !== undefined) return misuse("a free inside an area");
        if (p.op === "vm_unmap_ram" || typeof o["addr"] === "string")
          return misuse(`${p.op} of an address the script did not map`);
        break;
      }
      case "write": {
        const addr = p.target + (p.args["offset"] as number);
        const bytes = (p.args["hex"] as string).length / 2;
        const around = inside(addr);
        if (bytes > 0 && (around === undefined || addr + bytes > around[0] + around[1].size))
          return misuse("a write outside the areas the script mapped");
        break;
      }
      case "flush_work":
        deferred.clear();
        break;
      default:
        break;
    }
  }
  return null;
}
