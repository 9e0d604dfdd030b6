/**
 * Chrome trace-event JSON from the CPUs' trace rings (src/trace/trace.ts):
 * the format ui.perfetto.dev and chrome://tracing open. One process, one
 * thread ("CPU0", "CPU1" …) per CPU; "X" complete events for the spans (API
 * calls, lock waits and holds, RCU read-side sections, interrupt handlers);
 * "b"/"e" async events for grace periods; "s"/"f" flow arrows for lock
 * handoffs, from the release on one CPU to the acquisition by the CPU that
 * waited for it.
 *
 * Read on the main thread while the CPUs are parked or after the machine
 * stopped. The rings hold each CPU's last events, so a ring's start may cut
 * spans: an end whose begin is gone is dropped, a begin whose end never came
 * is closed where the trace ends (args.unfinished). Spans that do not nest
 * (a lock released after a lock taken after it) are split where the outer
 * one ends and go on as a second piece (args.continued), so every track
 * nests as the viewers require.
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { theArena } from "../shared/arena.js";
import { layoutOf } from "../shared/config.js";
import { kernelFnName } from "../shared/functab.js";
import { ksym_name } from "../kernel/kallsyms.js";
import { formatKaddr } from "../shared/layouts.js";
import { lockdep_class_name } from "../locks/lockdep.js";
import {
  LOCK_READ,
  LOCK_WRITE,
  TRACE_FUNCS,
  TR_GP_END,
  TR_GP_START,
  TR_GRAPH_ENTRY,
  TR_GRAPH_RETURN,
  TR_IRQ_HANDLER_ENTRY,
  TR_IRQ_HANDLER_EXIT,
  TR_LOCK_ACQUIRE,
  TR_LOCK_ACQUIRED,
  TR_LOCK_CONTENDED,
  TR_LOCK_RELEASE,
  TR_RCU_READ_LOCK,
  TR_RCU_READ_UNLOCK,
  type TraceArgFormat,
  type TraceEntry,
  type TraceFunc,
  traceCapacity,
  traceEntries,
  traceRecorded,
} from "../trace/trace.js";

/** One trace event (the fields the Trace Event Format defines that vmsim uses). */
export interface ChromeTraceEvent {
  readonly name: string;
  readonly ph: "X" | "b" | "e" | "s" | "f" | "M";
  /** µs. */
  readonly ts: number;
  readonly pid: number;
  readonly tid: number;
  readonly cat?: string;
  /** µs, "X" only. */
  readonly dur?: number;
  /** Flows (a number: Perfetto reads a string flow id as hex) and async events: the id pairing their two ends. */
  readonly id?: number | string;
  /** "f" only: bind to the enclosing slice. */
  readonly bp?: "e";
  readonly args?: Readonly<Record<string, unknown>>;
}

/** A whole trace file. */
export interface ChromeTrace {
  readonly traceEvents: ChromeTraceEvent[];
  readonly displayTimeUnit: "ns";
  readonly otherData: Readonly<Record<string, unknown>>;
}

/** Every process-wide event is in pid 0, the machine. */
const PID = 0;
/** ns between two events of one CPU at least: a flow arrow binds FLOW_NS inside its slice. */
const GAP_NS = 4;
const FLOW_NS = 2;
/** Free-running clocks of two threads may disagree by this much: a release this late still pairs. */
const FREE_SLACK_NS = 250;

const LOCK_CATS = ["spinlock", "rwlock", "rwlock", "mutex"] as const;

/** A span begun and not yet ended on a CPU's track; `start` is where its current piece began. */
interface Open {
  readonly id: string;
  readonly name: string;
  readonly cat: string;
  readonly args: Record<string, unknown>;
  start: number;
  continued: boolean;
}

/** A lock handoff end: the release (matched to a hold) or a contended acquisition. */
interface LockTime {
  readonly cpu: number;
  readonly t: number;
}
interface Acquisition extends LockTime {
  readonly lock: number;
  readonly waitStart: number;
}

const us = (ns: number) => ns / 1000;

function formatArg(fmt: TraceArgFormat, v: number): unknown {
  switch (fmt) {
    case "kaddr":
      return formatKaddr(layoutOf(theArena().config), v);
    case "kaddr_or_null":
      return v === 0 ? "NULL" : formatKaddr(layoutOf(theArena().config), v);
    case "ksym":
      return ksym_name(v);
    default:
      return v;
  }
}

function addArg(args: Record<string, unknown>, spec: readonly [string, TraceArgFormat] | undefined, v: number): void {
  if (spec === undefined) return;
  const s = formatArg(spec[1], v);
  if (s !== "") args[spec[0]] = s;
}

function lockName(cls: number, kind: number): string {
  const name = lockdep_class_name(cls);
  return kind === LOCK_READ ? `${name} (read)` : kind === LOCK_WRITE ? `${name} (write)` : name;
}

/** One CPU's track: pairs begins with ends on a stack, emitting "X" pieces that nest. */
class Track {
  private readonly stack: Open[] = [];
  unmatchedEnds = 0;

  constructor(
    private readonly cpu: number,
    private readonly out: ChromeTraceEvent[],
  ) {}

  open(id: string, name: string, cat: string, args: Record<string, unknown>, t: number): void {
    this.stack.push({ id, name, cat, args, start: t, continued: false });
  }

  /** Ends the innermost open span `id` at `t`; spans opened inside it are cut there and go on. */
  close(id: string, t: number, args: Record<string, unknown> = {}): Open | null {
    let i = this.stack.length - 1;
    while (i >= 0 && this.stack[i]!.id !== id) i--;
    if (i < 0) {
      this.unmatchedEnds++;
      return null;
    }
    const inner = this.stack.splice(i + 1);
    for (const s of inner.slice().reverse()) this.emit(s, t, {});
    const s = this.stack.pop()!;
    this.emit(s, t, args);
    for (const c of inner) {
      c.start = t;
      c.continued = true;
      this.stack.push(c);
    }
    return s;
  }

  /** Closes what is still open at `t`, the end of the trace. */
  finish(t: number): void {
    while (this.stack.length > 0) this.emit(this.stack.pop()!, t, { unfinished: true });
  }

  private emit(s: Open, t: number, extra: Record<string, unknown>): void {
    const args = { ...s.args, ...extra, ...(s.continued ? { continued: true } : {}) };
    this.out.push({
      name: s.name,
      cat: s.cat,
      ph: "X",
      ts: us(s.start),
      dur: us(t - s.start),
      pid: PID,
      tid: this.cpu,
      args,
    });
  }
}

/** A CPU's events as integer ns, each at least GAP_NS after the one before. */
function timesOf(entries: readonly TraceEntry[]): number[] {
  let prev = Number.NEGATIVE_INFINITY;
  return entries.map((e) => {
    const t = Math.max(Math.round(e.ts), prev + GAP_NS);
    prev = t;
    return t;
  });
}

/**
 * Builds the trace from every CPU's ring. Main thread, CPUs parked. When the
 * rings hold events of both clocks (a free-running setup before a
 * deterministic run), only the deterministic ones are kept.
 */
export function collectChromeTrace(): ChromeTrace {
  const config = theArena().config;
  const cpus = config.cpus;
  const all = Array.from({ length: cpus }, (_, cpu) => traceEntries(cpu));
  const det = all.some((es) => es.some((e) => e.det));
  const kept = all.map((es) => es.filter((e) => e.det === det));
  const times = kept.map(timesOf);
  const end = Math.max(0, ...times.map((ts) => ts.at(-1) ?? 0)) + GAP_NS;

  const spans: ChromeTraceEvent[] = [];
  const releases = new Map<number, LockTime[]>();
  const acquisitions: Acquisition[] = [];
  const gpStarts = new Map<number, LockTime>();
  const gps: ChromeTraceEvent[] = [];
  let unmatchedEnds = 0;

  for (let cpu = 0; cpu < cpus; cpu++) {
    const track = new Track(cpu, spans);
    const es = kept[cpu]!;
    const ts = times[cpu]!;
    /** The wait that just ended on this CPU: its lock and start, for the acquisition that follows. */
    let waited: { lock: number; start: number; index: number } | null = null;
    for (let i = 0; i < es.length; i++) {
      const e = es[i]!;
      const t = ts[i]!;
      switch (e.type) {
        case TR_GRAPH_ENTRY: {
          const f: TraceFunc | undefined = TRACE_FUNCS[e.key];
          if (f === undefined) break;
          const args: Record<string, unknown> = {};
          addArg(args, f.a, e.a);
          addArg(args, f.b, e.b);
          track.open(`f${e.key}`, f.name, "api", args, t);
          break;
        }
        case TR_GRAPH_RETURN: {
          const args: Record<string, unknown> = {};
          const f: TraceFunc | undefined = TRACE_FUNCS[e.key];
          addArg(args, f?.ret, e.a);
          track.close(`f${e.key}`, t, args);
          break;
        }
        case TR_LOCK_CONTENDED:
          track.open(`w${e.key}`, `wait ${lockName(e.a, e.b)}`, "lock_wait", { lock: `0x${e.key.toString(16)}` }, t);
          break;
        case TR_LOCK_ACQUIRED: {
          const w = track.close(`w${e.key}`, t);
          waited = w === null ? null : { lock: e.key, start: w.start, index: i };
          break;
        }
        case TR_LOCK_ACQUIRE:
          track.open(`l${e.key}`, lockName(e.a, e.b), LOCK_CATS[e.b] ?? "lock", { lock: `0x${e.key.toString(16)}` }, t);
          // Right after its wait on the same lock: a contended acquisition, the end of a handoff.
          if (waited !== null && waited.lock === e.key && waited.index === i - 1)
            acquisitions.push({ cpu, t, lock: e.key, waitStart: waited.start });
          break;
        case TR_LOCK_RELEASE:
          if (track.close(`l${e.key}`, t) !== null) {
            const list = releases.get(e.key) ?? [];
            list.push({ cpu, t });
            releases.set(e.key, list);
          }
          break;
        case TR_RCU_READ_LOCK:
          track.open("rcu", "rcu_read_lock", "rcu", {}, t);
          break;
        case TR_RCU_READ_UNLOCK:
          track.close("rcu", t);
          break;
        case TR_IRQ_HANDLER_ENTRY:
          track.open(
            `i${e.key}`,
            `irq/${e.key} ${e.a !== 0 ? kernelFnName(e.a) : "(no handler)"}`,
            "irq",
            { irq: e.key },
            t,
          );
          break;
        case TR_IRQ_HANDLER_EXIT:
          track.close(`i${e.key}`, t);
          break;
        case TR_GP_START:
          gpStarts.set(e.key, { cpu, t });
          break;
        case TR_GP_END: {
          const s = gpStarts.get(e.key);
          if (s === undefined) break;
          gpStarts.delete(e.key);
          gps.push(...gracePeriod(e.key, s, { cpu, t }));
          break;
        }
      }
    }
    track.finish(end);
    unmatchedEnds += track.unmatchedEnds;
  }
  for (const [seq, s] of gpStarts) gps.push(...gracePeriod(seq, s, { cpu: s.cpu, t: end }));

  const flows = handoffFlows(acquisitions, releases, det ? 0 : FREE_SLACK_NS);
  const byTime = (a: ChromeTraceEvent, b: ChromeTraceEvent) =>
    a.ts - b.ts || a.tid - b.tid || (b.dur ?? 0) - (a.dur ?? 0);
  const traceEvents = [...metadata(cpus, config.seed), ...[...spans, ...gps, ...flows].sort(byTime)];

  return {
    traceEvents,
    displayTimeUnit: "ns",
    otherData: {
      tool: "vmsim",
      clock: det
        ? "deterministic: ts = the scheduler's global step (1 step = 1 µs) + 4 ns per earlier event of the step"
        : "performance.now(), µs since the machine booted",
      cpus,
      seed: config.seed,
      layout: config.layout,
      eventsPerCpu: traceCapacity(),
      recorded: Array.from({ length: cpus }, (_, cpu) => traceRecorded(cpu)),
      otherClockDropped: all.reduce((n, es, cpu) => n + es.length - kept[cpu]!.length, 0),
      unmatchedEnds,
      handoffs: flows.length / 2,
    },
  };
}

/** The async "b"/"e" pair of grace period `seq`. */
function gracePeriod(seq: number, s: LockTime, e: LockTime): ChromeTraceEvent[] {
  const common = { name: "grace period", cat: "rcu", pid: PID, id: `gp${seq}` };
  return [
    { ...common, ph: "b", ts: us(s.t), tid: s.cpu, args: { gp_seq: seq } },
    { ...common, ph: "e", ts: us(e.t), tid: e.cpu },
  ];
}

/**
 * A flow arrow per contended acquisition: from the release of that lock, on
 * another CPU, that came last before it (and after its wait began).
 */
function handoffFlows(
  acquisitions: readonly Acquisition[],
  releases: ReadonlyMap<number, LockTime[]>,
  slack: number,
): ChromeTraceEvent[] {
  for (const list of releases.values()) list.sort((a, b) => a.t - b.t || a.cpu - b.cpu);
  const out: ChromeTraceEvent[] = [];
  const sorted = [...acquisitions].sort((a, b) => a.t - b.t || a.cpu - b.cpu);
  for (const acq of sorted) {
    const list = releases.get(acq.lock);
    if (list === undefined) continue;
    let from: LockTime | undefined;
    for (const r of list) {
      if (r.t > acq.t + slack) break;
      if (r.cpu !== acq.cpu && r.t >= acq.waitStart - slack) from = r;
    }
    if (from === undefined) continue;
    const id = out.length / 2 + 1;
    const common = { name: "handoff", cat: "lock", pid: PID, id };
    out.push(
      { ...common, ph: "s", ts: us(from.t - FLOW_NS), tid: from.cpu },
      { ...common, ph: "f", bp: "e", ts: us(acq.t + FLOW_NS), tid: acq.cpu },
    );
  }
  return out;
}

function metadata(cpus: number, seed: number): ChromeTraceEvent[] {
  const out: ChromeTraceEvent[] = [
    {
      name: "process_name",
      ph: "M",
      ts: 0,
      pid: PID,
      tid: 0,
      args: { name: `vmsim (${cpus} CPU${cpus === 1 ? "" : "s"}, seed ${seed})` },
    },
  ];
  for (let cpu = 0; cpu < cpus; cpu++)
    out.push(
      { name: "thread_name", ph: "M", ts: 0, pid: PID, tid: cpu, args: { name: `CPU${cpu}` } },
      { name: "thread_sort_index", ph: "M", ts: 0, pid: PID, tid: cpu, args: { sort_index: cpu } },
    );
  return out;
}

/** What {@link writeChromeTrace} wrote. */
export interface ChromeTraceSummary {
  readonly path: string;
  readonly events: number;
  readonly handoffs: number;
}

/**
 * Collects the trace and writes it to `path` (main thread, CPUs parked);
 * throws an Error naming the path when it cannot be written.
 */
export function writeChromeTrace(path: string): ChromeTraceSummary {
  const trace = collectChromeTrace();
  let fd: number;
  try {
    fd = openSync(path, "w");
  } catch (e) {
    throw new Error(`cannot write the trace to ${path}: ${(e as Error).message}`);
  }
  try {
    // Event by event: one JSON string of a large trace could pass V8's string limit.
    writeSync(fd, `{"displayTimeUnit":"ns","otherData":${JSON.stringify(trace.otherData)},"traceEvents":[\n`);
    const CHUNK = 4096;
    for (let i = 0; i < trace.traceEvents.length; i += CHUNK) {
      const part = trace.traceEvents.slice(i, i + CHUNK).map((e) => JSON.stringify(e));
      writeSync(fd, `${i > 0 ? ",\n" : ""}${part.join(",\n")}`);
    }
    writeSync(fd, "\n]}\n");
  } finally {
    closeSync(fd);
  }
  return { path, events: trace.traceEvents.length, handoffs: Number(trace.otherData.handoffs) };
}
