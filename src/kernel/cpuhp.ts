/**
 * What a CPU sets up as it comes online (kernel/cpu.c's hotplug states and
 * secondary_start_kernel, v4.19 in spirit): its interrupt source and its
 * kworker, both plugged in behind this thread's sched-point hook.
 *
 * Every CPU worker calls percpuCpuOnline after it attached to the arena. The
 * main thread does not (while the CPUs run it must not act as CPU 0); a unit
 * test that runs kernel code on the main thread calls it after start_kernel.
 */
import { theArena } from "../shared/arena.js";
import { SP_OP, type SP, addSchedSlowPath, removeSchedSlowPath } from "../sched/sched_point.js";
import { irqCpuOnline, irqSchedPoint } from "./irq.js";
import { onSetCurrentCpu } from "../shared/smp.js";
import { workqueueSafePoint } from "./workqueue.js";
import { traceCpuOnline } from "../trace/trace.js";

let wqAuto = true;
const IRQ_IDLE_PERIOD = 256;
/** The arena the hook was installed for: a thread that binds to a new machine drops it. */
let hookedTo: SharedArrayBuffer | null = null;

/** This CPU's part of every sched point: interrupts, then (at a safe point) the kworker. */
function percpuSchedPoint(kind: SP): number | undefined {
  const every = irqSchedPoint();
  if (kind === SP_OP && wqAuto) workqueueSafePoint();
  return every;
}

/**
 * Harness: brings this thread's CPU online for interrupts and work —
 * interrupt arrivals per config.irqRate, pending interrupts taken at every
 * sched point, the kworker at safe points when config.workqueue is "auto" —
 * and for tracing when config.trace is nonzero.
 * Calling it again (a new machine) replaces the earlier setup.
 */
export function percpuCpuOnline(): void {
  const a = theArena();
  if (hookedTo !== null) removeSchedSlowPath(percpuSchedPoint);
  irqCpuOnline();
  traceCpuOnline();
  wqAuto = a.config.workqueue === "auto";
  // Every point while an interrupt line has a handler (a raised interrupt is taken at the next
  // sched point); with none, a check every IRQ_IDLE_PERIOD points keeps free-mode sched points cheap.
  addSchedSlowPath(percpuSchedPoint, IRQ_IDLE_PERIOD);
  hookedTo = a.sab;
}

onSetCurrentCpu(() => {
  if (hookedTo !== null && hookedTo !== theArena().sab) {
    removeSchedSlowPath(percpuSchedPoint);
    hookedTo = null;
  }
});
