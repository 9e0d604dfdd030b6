/**
 * A CPU: one worker thread for the whole life of the machine. It attaches to
 * the arena, becomes CPU `cpu`, and runs workloads the main thread hands it
 * over comlink. A workload that throws stops the machine (like a BUG/oops with
 * panic_on_oops): every other CPU's wait loop sees the stop and unwinds.
 */
import { parentPort, workerData } from "node:worker_threads";
import * as Comlink from "comlink/dist/esm/comlink.mjs";
import nodeEndpoint from "comlink/dist/esm/node-adapter.mjs";
import "./kernel.js";
import "./workloads/index.js";
import { attachArena, machineResetThread, machineStop, machineStopping } from "../shared/arena.js";
import { addSchedSlowPath } from "../sched/sched_point.js";
import { set_task_comm, touch_softlockup_watchdog, watchdog_enable } from "../sched/watchdog.js";
import { schedRunAbort, schedRunBegin, schedRunEnd } from "../sched/sched_det.js";
import { kcsan_oops_window } from "../sched/kcsan.js";
import type { MachineConfig } from "../shared/config.js";
import { MachineStopped, takeNumberedReports } from "../shared/report.js";
import { lockdepAttach } from "../locks/lockdep.js";
import { spinlockAttach } from "../locks/spinlock.js";
import { setCurrentCpu } from "../shared/smp.js";
import { percpuCpuOnline } from "../kernel/cpuhp.js";
import { rcu_cpu_starting } from "../rcu/tree.js";
import { rcu_idle_park } from "../rcu/rcupdate.js";
import { cpuCtx, findWorkload } from "./workload.js";
import type { CpuApi, WorkResult } from "./protocol.js";

interface Boot {
  sab: SharedArrayBuffer;
  config: MachineConfig;
  cpu: number;
}

const boot = workerData as Boot;

attachArena(boot.sab, boot.config);
setCurrentCpu(boot.cpu);
lockdepAttach();
spinlockAttach();
percpuCpuOnline();
rcu_cpu_starting(boot.cpu);
const ctx = cpuCtx(boot.cpu, boot.config.seed);
// A CPU that loops without ever waiting still notices a stopped machine, in a work item,
// softirq or handler too (nested).
addSchedSlowPath(
  () => {
    if (machineStopping()) throw new MachineStopped();
  },
  4096,
  true,
);
// A CPU that stays inside one kernel call past the watchdog reports a soft lockup.
watchdog_enable();

const api: CpuApi = {
  run(name: string, args: unknown, reset: boolean): WorkResult {
    const fn = findWorkload(name);
    if (!fn) return { ok: false, error: { name: "Error", message: `unknown workload ${name}` }, reports: [] };
    // The machine was restored from a snapshot since this CPU's last call: forget the old contents.
    if (reset) machineResetThread();
    try {
      // Under the deterministic scheduler the call joins the run and waits for the token first.
      schedRunBegin();
      // The CPU is back from its last call: the soft-lockup clock starts over, under the workload's name.
      set_task_comm(name);
      touch_softlockup_watchdog();
      const value = fn(args, ctx);
      // The CPU goes idle (its RCU counter store) while it still holds the run token: after the
      // handoff that store would race with the next holder's grace-period scans, and a replay diverge.
      rcu_idle_park(true);
      schedRunEnd();
      return { ok: true, value, ...takeNumberedReports() };
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      if (!(err instanceof MachineStopped)) {
        kcsan_oops_window();
        machineStop(boot.cpu);
      }
      rcu_idle_park(false);
      schedRunAbort();
      return {
        ok: false,
        error: { name: err.name, message: err.message, stack: err.stack },
        stopped: err instanceof MachineStopped,
        ...takeNumberedReports(),
      };
    }
  },
};

Comlink.expose(api, nodeEndpoint(parentPort!));
