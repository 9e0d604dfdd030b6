/**
 * Kernel reports: WARN splats, lockdep splats, oopses (faults), soft lockups.
 * A report is kept in this CPU's list (returned with its next result) and
 * counted in the arena, so the main thread sees the total live.
 */
import { countReport, onMachineReset } from "./arena.js";
import { isAllocFailureReport, trace_report } from "./events.js";
import { smp_processor_id } from "./smp.js";

export type ReportKind =
  | "WARN"
  | "lockdep"
  | "fault"
  | "stale-tlb"
  | "rcu"
  | "soft-lockup"
  | "bad-page"
  | "slab"
  | "sched"
  | "kcsan";

export interface Report {
  readonly kind: ReportKind;
  readonly cpu: number;
  /** The report; when identical ones followed it, its last line says how many ("N callbacks suppressed"). */
  readonly text: string;
  /** Identical reports after this one that were counted, not kept (absent: none). */
  readonly suppressed?: number;
  /**
   * The kernel functions on the stack at the report, innermost first: the
   * oops' call trace (`show_numa_info`, `s_show`, `vmallocinfo`). Empty for
   * allocation failures (expected under fault injection: not worth a trace)
   * and for reports made outside kernel code.
   */
  readonly callers: readonly string[];
}

/** Frames a call chain keeps: the failing function and its nearest callers. */
export const CALL_CHAIN_DEPTH = 8;
/** Kernel code keeps the kernel's names: snake_case (or one lowercase word: vmalloc, vfree). */
const KERNEL_NAME = /^_*[a-z][a-z0-9_]*$/;
/** The folders below the workloads: the kernel, and the sched points and arena it stands on. */
const KERNEL_FOLDER = /\/src\/(shared|sched|percpu|locks|lib|rcu|kernel|mm)\//;
/** The deterministic scheduler behind the sched points: vmsim's, not the kernel's. */
const SCHED_FOLDER = /\/src\/sched\//;

/**
 * The kernel call chain of a V8 stack (an Error's `stack`), innermost first:
 * the frames of kernel-named functions in src/. Frames below the kernel
 * before the first kernel frame (the MMU's access and an oops' model, which
 * are camelCase; the scheduler's sched point) are skipped; the first other
 * frame after it (the workload that called the kernel) ends the chain.
 */
export function kernelCallChain(stack: string): string[] {
  const out: string[] = [];
  for (const line of stack.split("\n")) {
    const m = /^\s+at (?:async )?(?:(\S+)(?: \[as \S+\])? \()?(.+?)\)?$/.exec(line);
    if (m === null) continue;
    const [, name, where] = m;
    const inSrc = /\/src\//.test(where!) && !where!.includes("node_modules") && !SCHED_FOLDER.test(where!);
    if (inSrc && name !== undefined && KERNEL_NAME.test(name)) {
      out.push(name);
      if (out.length === CALL_CHAIN_DEPTH) break;
    } else if (out.length > 0 || !KERNEL_FOLDER.test(where!)) break;
  }
  return out;
}

/** The kernel call chain of the caller of `fn`. */
function callersOf(fn: (...args: never[]) => unknown): string[] {
  const limit = Error.stackTraceLimit;
  // Room for the harness helpers before the kernel frames, and for the chain.
  Error.stackTraceLimit = 3 * CALL_CHAIN_DEPTH;
  const at: { stack?: string } = {};
  Error.captureStackTrace(at, fn);
  Error.stackTraceLimit = limit;
  return kernelCallChain(at.stack ?? "");
}

/**
 * Distinct reports one CPU keeps between two hand-overs; past this, each kind
 * keeps only a count. A CPU looping over corrupted data warns for ever: its
 * memory must stay bounded until the watchdog ends the loop.
 */
export const MAX_PENDING_REPORTS = 4096;

interface Pending {
  readonly kind: ReportKind;
  readonly cpu: number;
  /** Its number among all CPUs' reports since boot (the arena's report count). */
  readonly seq: number;
  readonly text: string;
  readonly callers: readonly string[];
  suppressed: number;
}

/**
 * Identical reports one CPU keeps before it only counts them: the burst of
 * printk's ratelimit (DEFAULT_RATELIMIT_BURST, include/linux/ratelimit.h).
 */
export const RATELIMIT_BURST = 10;

let pending: Pending[] = [];
/** Per kind and text: copies kept so far and the last one, which counts the repeats past the burst. */
let byText = new Map<string, { kept: number; last: Pending }>();
/** Distinct reports past MAX_PENDING_REPORTS, counted by kind. */
let dropped = new Map<ReportKind, number>();

function forget(): void {
  pending = [];
  byText = new Map();
  dropped = new Map();
}
onMachineReset(forget);

/** What runs after an oops is recorded (KCSAN's deterministic watch registers it): nothing by default. */
let afterOops: () => void = () => {};

/** KCSAN (src/sched/kcsan.ts) registers kcsan_oops_window, once, at module load. */
export function registerAfterOops(fn: () => void): void {
  afterOops = fn;
}

/**
 * Records a report on this CPU; returns it (tests assert on the text). As
 * printk's ratelimit (lib/ratelimit.c) does, a report identical to
 * RATELIMIT_BURST others this CPU has not handed over yet is counted, not
 * stored. `where`, when given, is the call chain of the code reported (a
 * report made after the fact); else the caller's.
 */
export function reportBug(kind: ReportKind, text: string, where?: readonly string[]): Report {
  const seq = countReport();
  trace_report(kind, text, seq);
  const key = `${kind}\n${text}`;
  const seen = byText.get(key);
  if (seen !== undefined && seen.kept >= RATELIMIT_BURST) {
    seen.last.suppressed++;
    return seen.last;
  }
  // The stack is read once per kept report: a repeat is only counted.
  const callers = where !== undefined ? [...where] : isAllocFailureReport(kind, text) ? [] : callersOf(reportBug);
  const r: Pending = { kind, cpu: smp_processor_id(), seq, text, callers, suppressed: 0 };
  if (pending.length >= MAX_PENDING_REPORTS) {
    dropped.set(kind, (dropped.get(kind) ?? 0) + 1);
    return r;
  }
  pending.push(r);
  byText.set(key, { kept: (seen?.kept ?? 0) + 1, last: r });
  if (kind === "fault") afterOops();
  return r;
}

/** Hands over (and clears) this CPU's reports; a repeated one says how often it was suppressed. */
export function takeReports(): Report[] {
  return takeNumberedReports().reports;
}

/** takeReports, with each report's number in the machine's order of reports (a count of suppressed ones: last). */
export function takeNumberedReports(): { reports: Report[]; seqs: number[] } {
  const seqs = pending.map((r) => r.seq);
  const out: Report[] = pending.map((r) =>
    r.suppressed === 0
      ? { kind: r.kind, cpu: r.cpu, text: r.text, callers: r.callers }
      : {
          kind: r.kind,
          cpu: r.cpu,
          text: `${r.text}\n${r.suppressed} callbacks suppressed`,
          callers: r.callers,
          suppressed: r.suppressed,
        },
  );
  const cpu = pending[0]?.cpu ?? smp_processor_id();
  for (const [kind, n] of dropped) {
    out.push({ kind, cpu, text: `printk: ${n} messages suppressed`, callers: [], suppressed: n - 1 });
    seqs.push(Number.MAX_SAFE_INTEGER);
  }
  forget();
  return { reports: out, seqs };
}

/** How many reports `r` stands for: itself and the identical ones suppressed after it. */
export function reportCountOf(r: Report): number {
  return 1 + (r.suppressed ?? 0);
}

export { KernelBug } from "./bug.js";

/** The machine was stopped (by another CPU's BUG, a soft lockup, or shutdown) while this CPU waited. */
export class MachineStopped extends Error {
  constructor() {
    super("machine stopped");
    this.name = "MachineStopped";
  }
}
