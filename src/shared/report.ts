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
  | "sched";

export interface Report {
  readonly kind: ReportKind;
  readonly cpu: number;
  readonly text: string;
  /**
   * The kernel functions on the stack at the report, innermost first: the
   * oops' call trace (`show_numa_info`, `s_show`, `vmallocinfo`). Empty for
   * allocation failures (expected under fault injection: not worth a trace)
   * and for reports made outside kernel code.
   */
  readonly callers: readonly string[];
}

/** Frames a call chain keeps: the failing function and its nearest callers. */
const CALL_CHAIN_DEPTH = 8;
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

let pending: Report[] = [];
onMachineReset(() => {
  pending = [];
});

/** Records a report on this CPU, with its call chain; returns it (tests assert on the text). */
export function reportBug(kind: ReportKind, text: string): Report {
  const callers = isAllocFailureReport(kind, text) ? [] : callersOf(reportBug);
  const r = { kind, cpu: smp_processor_id(), text, callers };
  pending.push(r);
  trace_report(kind, text, countReport());
  return r;
}

/** Hands over (and clears) this CPU's reports. */
export function takeReports(): Report[] {
  const r = pending;
  pending = [];
  return r;
}

/**
 * BUG(): an unrecoverable kernel error. Thrown, it unwinds the CPU; the harness
 * stops the machine and reports the CPU, the message and the seed.
 */
export class KernelBug extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KernelBug";
  }
}

/** The machine was stopped (by another CPU's BUG, a soft lockup, or shutdown) while this CPU waited. */
export class MachineStopped extends Error {
  constructor() {
    super("machine stopped");
    this.name = "MachineStopped";
  }
}
