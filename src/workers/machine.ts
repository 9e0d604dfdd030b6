/**
 * The machine, seen from the main thread: boot it (start_kernel on the main
 * thread as the boot CPU), start one worker per CPU, hand workloads to CPUs,
 * collect results and reports, shut down. A CPU that throws stops the machine
 * and the call fails with a {@link MachineError} naming the CPU, the error and
 * the seed — never a hang.
 */
import { Worker } from "node:worker_threads";
import * as Comlink from "comlink/dist/esm/comlink.mjs";
import nodeEndpoint from "comlink/dist/esm/node-adapter.mjs";
import {
  type Arena,
  attachArena,
  machineResetThread,
  machineStop,
  machineStopping,
  restoreArena,
  snapshotArena,
  theArena,
} from "../shared/arena.js";
import { schedIsOn, schedPrepareCall } from "../sched/sched_det.js";
import { setCurrentCpu } from "../shared/smp.js";
import { monotonicMs, watchdogExpired } from "../sched/watchdog_clock.js";
import { type MachineConfig, makeConfig } from "../shared/config.js";
import type { Report } from "../shared/report.js";
import { start_kernel } from "./boot.js";
import type { CpuApi, WorkError, WorkResult } from "./protocol.js";
import { compiledModule } from "./compiled.js";

/** A CPU failed (BUG, soft lockup, an exception) and the machine stopped. */
export class MachineError extends Error {
  constructor(
    readonly cpu: number,
    readonly error: WorkError,
    readonly seed: number,
  ) {
    super(`CPU${cpu}: ${error.name}: ${error.message} (seed ${seed})`);
    this.name = "MachineError";
  }
}

/**
 * The hard-lockup watchdog's threshold: after the machine stopped, every CPU
 * unwinds at its next sched point (4096 points at most); one that has not
 * answered this long after the stop (scaled with the host's load:
 * src/sched/watchdog_clock.ts) is looping without any.
 */
export const HARD_LOCKUP_MS = 2000;

interface Cpu {
  readonly worker: Worker;
  readonly api: Comlink.Remote<CpuApi>;
  /** Rejects when the worker dies outside a workload (crash, exit). */
  readonly dead: Promise<never>;
  /** Workloads handed to this CPU and not yet answered. */
  inFlight: number;
  /** The machine was restored since this CPU's last call. */
  resetPending: boolean;
}

export class Machine {
  /** Reports (WARN, lockdep, faults …) collected from every finished workload. */
  readonly reports: Report[] = [];
  private down = false;

  private constructor(
    readonly config: MachineConfig,
    readonly arena: Arena,
    private readonly cpus: Cpu[],
  ) {}

  /** Boots a machine from `config` (defaults: DEFAULT_CONFIG) and starts its CPUs. */
  static async boot(config: Partial<MachineConfig> = {}): Promise<Machine> {
    const c = makeConfig(config);
    const arena = start_kernel(c);
    // With KCSAN the CPUs run the instrumented build; the main thread's modules stay dist/ (same struct tables).
    const url = compiledModule("workers/cpu.js", c.kcsan);
    const cpus = await Promise.all(Array.from({ length: c.cpus }, (_, cpu) => startCpu(url, arena.sab, c, cpu)));
    return new Machine(c, arena, cpus);
  }

  /** Runs workload `name` on CPU `cpu`; resolves to its return value. */
  async run(cpu: number, name: string, args: unknown = {}): Promise<unknown> {
    this.bind();
    if (schedIsOn()) schedPrepareCall(1);
    const r = await this.call(cpu, name, args);
    return this.settle(cpu, r);
  }

  /** Runs workload `name` on every CPU at once; `args` may differ per CPU. */
  async runAll(name: string, args: unknown | ((cpu: number) => unknown) = {}): Promise<unknown[]> {
    this.bind();
    if (schedIsOn()) schedPrepareCall(this.cpus.length);
    const results = await Promise.all(
      this.cpus.map((_, cpu) =>
        this.call(cpu, name, typeof args === "function" ? (args as (c: number) => unknown)(cpu) : args),
      ),
    );
    // All CPUs' reports in the order they were made: the first is the run's first failure, whichever CPU
    // made it (a KCSAN report of a race before the WARN that race led to on another CPU).
    const numbered = results.flatMap((r) => r.reports.map((report, i) => ({ report, seq: r.seqs?.[i] ?? 0 })));
    numbered.sort((a, b) => a.seq - b.seq);
    for (const { report } of numbered) this.reports.push(report);
    // Name the CPU that failed first, not one that only unwound because of it.
    const failed = results.findIndex((r) => !r.ok && !r.stopped);
    if (failed >= 0) this.outcome(failed, results[failed]!);
    return results.map((r, cpu) => this.outcome(cpu, r));
  }

  private async call(cpu: number, name: string, args: unknown): Promise<WorkResult> {
    const c = this.cpus[cpu];
    if (!c) throw new RangeError(`no CPU ${cpu} (the machine has ${this.cpus.length})`);
    if (this.down) throw new Error("machine is shut down");
    // An idle CPU does not keep the process alive; one running a workload does.
    if (c.inFlight++ === 0) c.worker.ref();
    const lockup = this.watchHardLockup(cpu, c);
    try {
      const reset = c.resetPending;
      c.resetPending = false;
      return await Promise.race([c.api.run(name, args, reset), c.dead, lockup.result]);
    } finally {
      lockup.cancel();
      if (--c.inFlight === 0) c.worker.unref();
    }
  }

  /**
   * The hard-lockup watchdog (kernel/watchdog_hld.c's role) of one call: a
   * CPU still running HARD_LOCKUP_MS (scaled) after the machine stopped walks
   * something forever (a list or tree a race corrupted into a cycle) without
   * a sched point. Its worker is terminated and the call answers with the
   * lockup, so a run whose kernel loops still ends.
   */
  private watchHardLockup(cpu: number, c: Cpu): { result: Promise<WorkResult>; cancel: () => void } {
    let timer: NodeJS.Timeout | undefined;
    const result = new Promise<WorkResult>((resolve) => {
      let stoppedAt = 0;
      timer = setInterval(() => {
        if (!machineStopping()) return;
        stoppedAt ||= monotonicMs();
        const limit = watchdogExpired(monotonicMs() - stoppedAt, HARD_LOCKUP_MS, this.config.cpus);
        if (limit === null) return;
        clearInterval(timer);
        void c.worker.terminate();
        const message = `watchdog: Watchdog detected hard LOCKUP on cpu ${cpu}: no sched point ${Math.round(limit.ms)} ms after the machine stopped${limit.note}`;
        resolve({ ok: false, error: { name: "HardLockup", message }, reports: [] });
      }, 100);
    });
    return { result, cancel: () => clearInterval(timer) };
  }

  private settle(cpu: number, r: WorkResult): unknown {
    // One push per report: a workload may return more than a spread's arguments can hold.
    for (const report of r.reports) this.reports.push(report);
    return this.outcome(cpu, r);
  }

  /** A call's value, or its failure thrown. */
  private outcome(cpu: number, r: WorkResult): unknown {
    if (r.ok) return r.value;
    throw new MachineError(cpu, r.error, this.config.seed);
  }

  /** A copy of the machine's whole state (CPUs parked): {@link restore} returns to it. */
  snapshot(): Uint8Array {
    this.bind();
    return snapshotArena();
  }

  /**
   * Puts the machine back to a snapshot of this machine, far cheaper than a
   * boot: the arena's bytes go back, and every thread forgets its caches and
   * clocks of the old contents (a CPU at the start of its next call). A
   * stopped machine runs again.
   */
  async restore(snap: Uint8Array): Promise<void> {
    if (this.down) throw new Error("machine is shut down");
    this.bind();
    restoreArena(snap);
    machineResetThread();
    // Each CPU forgets the old contents at the start of its next call: no round trip of its own.
    for (const c of this.cpus) c.resetPending = true;
  }

  /**
   * Makes this machine the main thread's again (it looks at one arena at a
   * time: the last one booted or bound), as CPU 0 for the checkers.
   */
  bind(): void {
    if (theArena().sab === this.arena.sab) return;
    attachArena(this.arena.sab, this.config);
    setCurrentCpu(0);
  }

  /** True once a CPU stopped the machine. */
  get stopped(): boolean {
    return machineStopping();
  }

  /** Stops every CPU and terminates the workers. Safe to call twice. */
  async shutdown(): Promise<void> {
    if (this.down) return;
    this.down = true;
    machineStop(-1);
    await Promise.all(
      this.cpus.map(async (c) => {
        c.api[Comlink.releaseProxy]();
        await c.worker.terminate();
      }),
    );
  }
}

async function startCpu(url: string, sab: SharedArrayBuffer, config: MachineConfig, cpu: number): Promise<Cpu> {
  const worker = new Worker(url, { workerData: { sab, config, cpu } });
  const dead = new Promise<never>((_, reject) => {
    worker.once("error", (e) =>
      reject(new MachineError(cpu, { name: e.name, message: e.message, stack: e.stack }, config.seed)),
    );
    worker.once("exit", (code) =>
      reject(new MachineError(cpu, { name: "Exit", message: `CPU worker exited with code ${code}` }, config.seed)),
    );
  });
  dead.catch(() => {});
  const api = Comlink.wrap<CpuApi>(nodeEndpoint(worker));
  worker.unref();
  return { worker, api, dead, inFlight: 0, resetPending: false };
}
