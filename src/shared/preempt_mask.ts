/**
 * preempt_count's bit layout (include/linux/preempt.h, v4.19): data only, on
 * the lowest floor so the event ring (src/shared/events.ts) can name a
 * context; the counters themselves live in src/percpu/preempt.ts.
 */
export const PREEMPT_OFFSET = 0x1;
export const SOFTIRQ_OFFSET = 0x100;
export const HARDIRQ_OFFSET = 0x10000;
export const NMI_OFFSET = 0x100000;
export const PREEMPT_MASK = 0xff;
export const SOFTIRQ_MASK = 0xff00;
export const HARDIRQ_MASK = 0xf0000;
export const NMI_MASK = 0x100000;
/** local_bh_disable adds twice SOFTIRQ_OFFSET, as the kernel's SOFTIRQ_DISABLE_OFFSET. */
export const SOFTIRQ_DISABLE_OFFSET = 2 * SOFTIRQ_OFFSET;
