/**
 * `vmsim exec`: drives a machine from an op script, one JSON object per line,
 * and prints one JSON result line per op, in input order — the contract of
 * docs/exec.md, which other tools (fuzzers, reference models, notebooks)
 * rely on: fields are only ever added.
 *
 * Each line runs as the workload "exec_op" (src/workers/workloads/exec.ts) on
 * its CPU. Lines run one at a time in script order, whatever their CPU: ops on
 * one CPU are in script order as docs/exec.md requires, every run of a script is
 * deterministic (returned addresses included), and between two lines every CPU
 * is parked, which is what `check` needs. Concurrency is `vmsim run`'s job.
 *
 * The machine's workqueue is "explicit": deferred vfrees (vfree_deferred's
 * free_work) run only at `flush_work` — each CPU's kworker in turn, CPU 0
 * first — and once more after the last line.
 *
 * Results beyond docs/exec.md's fields:
 * - `ok` is false also when the kernel call raised a report (a WARN, an oops,
 *   a stale-TLB access, a lockdep splat); `error` is the first line of the
 *   first report and `reports` lists them all as "kind: text".
 * - A read served by a stale TLB entry (after an unmap, before the flush) has
 *   `hex` — the load happened — and ok false with the stale-tlb report.
 * - A BUG stops the machine: that line and every later one get ok false with
 *   the CPU's error, the script still answers every line, and the exit status
 *   is 1. So does a soft lockup (src/sched/watchdog.ts: a CPU inside one
 *   kernel call longer than `--watchdog`, e.g. free_work walking a
 *   vfree_deferred list that a double vfree from interrupt context made a
 *   cycle): the line that ran it lists the reports, and the report with the
 *   CPU's last events goes to stderr.
 *
 * Labels (`as`) name the address an op returned — NULL when the allocation
 * failed, so a later vfree of it is vfree(NULL) and a read through it faults
 * at address 0; a later `as` with the same name rebinds it, and a label still
 * resolves after its area is freed (a read after vfree is a use-after-free to
 * observe). Only a label no line defined is "unknown label". The pages behind a vmap or
 * vm_map_ram belong to exec (the API's caller): freed when vunmap, vfree
 * (vmap) or vm_unmap_ram with the mapped count removes the mapping, held (and
 * counted as harness pages by `check`) otherwise.
 */
import { closeSync, createReadStream, fstatSync, openSync } from "node:fs";
import { createInterface } from "node:readline";
import { PAGE_SIZE, type MachineConfig, layoutOf } from "../shared/config.js";
import { type Layout, formatKaddr } from "../shared/layouts.js";
import type { Report } from "../shared/report.js";
import { Machine, MachineError } from "../workers/machine.js";
import type { ExecReply, ExecRequest, HeldPages } from "../workers/workloads/exec.js";
import { checkMachine } from "../check/index.js";
import { LineError, type ParsedOp, isObject, parseOp } from "../workers/exec_op.js";

/** Opens the script: standard input for "-"; throws (ENOENT, EISDIR …) when the file cannot be read. */
export function openScript(path: string): NodeJS.ReadableStream {
  if (path === "-") return process.stdin;
  const fd = openSync(path, "r");
  if (fstatSync(fd).isDirectory()) {
    closeSync(fd);
    throw new Error(`EISDIR: is a directory, open '${path}'`);
  }
  return createReadStream("", { fd });
}

/*** Running a script ***/

/** One result line. Key order is the output's: op, ok, as, cpu, the op's fields, error, reports. */
type ResultLine = Record<string, unknown>;

function reportText(r: Report): string {
  return `${r.kind}: ${r.text}`;
}

/** The first line of a report, as `error` gives it. */
function firstLine(r: Report): string {
  return r.text.split("\n")[0]!;
}

/** A running exec session: the machine, the labels and the pages exec holds. */
class ExecSession {
  private readonly labels = new Map<string, number>();
  /** Pages exec mapped with vmap / vm_map_ram, by the kaddr they are mapped at. */
  private readonly vmapHeld = new Map<number, HeldPages>();
  private readonly ramHeld = new Map<number, HeldPages>();
  /** Why the machine stopped (a BUG or soft lockup on some CPU), once it has. */
  stopped: string | null = null;
  /** The reports of the call that stopped the machine (its soft-lockup or BUG report among them). */
  stopReports: Report[] = [];
  private readonly layout: Layout;

  constructor(private readonly m: Machine) {
    this.layout = layoutOf(m.config);
  }

  /** Runs one request on `cpu`; the reply and the reports it raised. */
  private async run(cpu: number, req: ExecRequest): Promise<{ reply: ExecReply; reports: Report[] }> {
    const before = this.m.reports.length;
    try {
      const reply = (await this.m.run(cpu, "exec_op", req)) as ExecReply;
      return { reply, reports: this.m.reports.slice(before) };
    } catch (e) {
      if (e instanceof MachineError) this.stopReports = this.m.reports.slice(before);
      throw e;
    }
  }

  /** The vmap pages in whose area `addr` lies. */
  private vmapHeldAt(addr: number): HeldPages | null {
    for (const h of this.vmapHeld.values()) if (addr >= h.start && addr < h.start + h.count * PAGE_SIZE) return h;
    return null;
  }

  private forget(released: readonly number[] | undefined): void {
    for (const start of released ?? []) this.vmapHeld.delete(start);
  }

  /** Answers one non-blank input line. */
  async line(text: string): Promise<ResultLine> {
    let o: unknown;
    try {
      o = JSON.parse(text);
    } catch (e) {
      return { op: null, ok: false, error: `not JSON: ${(e as Error).message}` };
    }
    if (!isObject(o)) return { op: null, ok: false, error: `not a JSON object: ${text.trim()}` };
    const head: ResultLine = { op: "op" in o ? o["op"] : null, ok: false };
    if ("as" in o) head["as"] = o["as"];
    if ("cpu" in o) head["cpu"] = o["cpu"];
    let p: ParsedOp;
    try {
      p = parseOp(o, this.m.config.cpus, this.labels, this.layout);
    } catch (e) {
      if (e instanceof LineError) return { ...head, error: e.message };
      throw e;
    }
    if (this.stopped !== null) return { ...head, error: `the machine has stopped: ${this.stopped}` };
    try {
      return await this.execute(p, head);
    } catch (e) {
      if (!(e instanceof MachineError)) throw e;
      this.stopped = e.message;
      const out: ResultLine = { ...head, error: e.message };
      if (this.stopReports.length > 0) out["reports"] = this.stopReports.map(reportText);
      return out;
    }
  }

  /** Runs a parsed line and shapes its result. */
  private async execute(p: ParsedOp, head: ResultLine): Promise<ResultLine> {
    const { cpu, irq, args } = p;
    const out: ResultLine = { ...head };
    let reports: Report[] = [];
    let failure: string | null = null;
    const addrResult = (reply: ExecReply, what: string) => {
      const addr = reply.addr ?? 0;
      out["addr"] = addr === 0 ? null : formatKaddr(this.layout, addr);
      if (addr === 0) failure = reply.failed ?? `${what} returned NULL`;
      // A label names what the call returned, NULL included (EXEC.md).
      if (typeof args["as"] === "string") this.labels.set(args["as"], addr);
    };
    switch (p.op) {
      case "vmalloc":
      case "vzalloc": {
        const req: ExecRequest =
          p.op === "vmalloc"
            ? { op: "vmalloc", size: args["size"] as number, align: (args["align"] as number) ?? null, irq }
            : { op: "vzalloc", size: args["size"] as number, irq };
        const r = await this.run(cpu, req);
        reports = r.reports;
        addrResult(r.reply, p.op);
        break;
      }
      case "vmap":
      case "vm_map_ram": {
        const r = await this.run(cpu, { op: p.op, count: args["pages"] as number, irq });
        reports = r.reports;
        addrResult(r.reply, p.op);
        if (r.reply.held) (p.op === "vmap" ? this.vmapHeld : this.ramHeld).set(r.reply.held.start, r.reply.held);
        break;
      }
      case "vfree":
      case "vunmap": {
        const r = await this.run(cpu, { op: p.op, addr: p.target, irq, held: this.vmapHeldAt(p.target) });
        reports = r.reports;
        this.forget(r.reply.released);
        break;
      }
      case "vm_unmap_ram": {
        const count = args["pages"] as number;
        const h = this.ramHeld.get(p.target);
        const held = h !== undefined && h.count === count ? h : null;
        const r = await this.run(cpu, { op: "vm_unmap_ram", addr: p.target, count, irq, held });
        reports = r.reports;
        if (held) this.ramHeld.delete(held.start);
        break;
      }
      case "write":
      case "read": {
        const addr = p.target + (args["offset"] as number);
        const bytes = p.op === "write" ? (args["hex"] as string).length / 2 : (args["len"] as number);
        if (addr + bytes > 2 ** this.layout.vaBits) {
          failure = `${p.op}: ${bytes} bytes at offset ${args["offset"]} run past the end of the address space`;
          break;
        }
        const req: ExecRequest =
          p.op === "write"
            ? { op: "write", addr, hex: args["hex"] as string, irq, nullBase: p.target === 0 }
            : { op: "read", addr, len: bytes, irq, nullBase: p.target === 0 };
        const r = await this.run(cpu, req);
        reports = r.reports;
        if (r.reply.hex !== undefined) out["hex"] = r.reply.hex;
        if (r.reply.fault !== undefined) failure = `${p.op}: ${r.reply.fault} fault`;
        break;
      }
      case "purge":
      case "vmallocinfo":
      case "meminfo": {
        const r = await this.run(cpu, { op: p.op, irq });
        reports = r.reports;
        if (r.reply.lines) out["lines"] = r.reply.lines;
        if (r.reply.meminfo) Object.assign(out, r.reply.meminfo);
        break;
      }
      case "flush_work":
        reports = await this.flushWork(irq);
        break;
      case "check":
        // Between two lines every CPU is parked: the checker runs here, on the main thread.
        out["violations"] = checkMachine();
        break;
    }
    out["ok"] = failure === null && reports.length === 0;
    if (reports.length > 0) {
      out["error"] = firstLine(reports[0]!);
      out["reports"] = reports.map(reportText);
    } else if (failure !== null) {
      out["error"] = failure;
    }
    return out;
  }

  /** Every CPU's kworker runs its pending work, CPU 0 first; then exec frees vmap pages whose area went. */
  async flushWork(irq: boolean): Promise<Report[]> {
    const reports: Report[] = [];
    for (let cpu = 0; cpu < this.m.config.cpus; cpu++)
      reports.push(...(await this.run(cpu, { op: "flush_work", irq })).reports);
    if (this.vmapHeld.size > 0) {
      const r = await this.run(0, { op: "release_unmapped", held: [...this.vmapHeld.values()] });
      reports.push(...r.reports);
      this.forget(r.reply.released);
    }
    return reports;
  }
}

/**
 * Runs the script from `input` on a machine booted from `config` (whose
 * workqueue must be "explicit"), writing one result line per non-blank input
 * line to `write`, and the lines a user reads on stderr (reports of the final
 * flush, why the machine stopped) to `warn`; `atEnd` sees the machine the
 * script left (CPUs parked, after the final flush_work, or where a BUG stopped
 * it) before it shuts down. Resolves to the exit status: 0 when the script ran
 * to its end, 1 when a BUG stopped the machine on the way.
 */
export async function execScript(
  config: MachineConfig,
  input: NodeJS.ReadableStream,
  write: (line: string) => void = (line) => process.stdout.write(line),
  atEnd: (m: Machine, stopped: string | null) => void = () => {},
  warn: (line: string) => void = (line) => console.error(line),
): Promise<number> {
  const m = await Machine.boot(config);
  const s = new ExecSession(m);
  try {
    for await (const text of createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY })) {
      if (text.trim() === "") continue;
      write(`${JSON.stringify(await s.line(text))}\n`);
    }
    if (s.stopped === null) {
      try {
        for (const r of await s.flushWork(false)) warn(`vmsim: exec: final flush_work: [CPU${r.cpu}] ${reportText(r)}`);
      } catch (e) {
        if (!(e instanceof MachineError)) throw e;
        s.stopped = e.message;
      }
    }
    m.bind();
    atEnd(m, s.stopped);
  } finally {
    await m.shutdown();
  }
  if (s.stopped !== null) {
    // The kernel log of the call that stopped the machine: the soft lockup (or BUG) with its CPU's events.
    for (const r of s.stopReports) warn(`[CPU${r.cpu}] ${reportText(r)}`);
    warn(`vmsim: exec: the machine stopped: ${s.stopped}`);
    return 1;
  }
  return 0;
}
