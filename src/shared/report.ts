/**
 * Kernel reports: WARN splats, lockdep splats, oopses (faults), soft lockups.
 * A report is kept in this CPU's list (returned with its next result) and
 * counted in the arena, so the main thread sees the total live.
 */
import { countReport, onMachineReset } from "./arena.js";
import { trace_report } from "./events.js";
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
}

let pending: Report[] = [];
onMachineReset(() => {
  pending = [];
});

/** Records a report on this CPU; returns it (tests assert on the text). */
export function reportBug(kind: ReportKind, text: string): Report {
  const r = { kind, cpu: smp_processor_id(), text };
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
