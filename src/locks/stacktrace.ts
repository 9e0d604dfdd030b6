/**
 * save_stack_trace (kernel/stacktrace.c, v4.19, in spirit): the calling
 * thread's frames of vmsim code, innermost first, for reports that say where
 * something happened (might_sleep's "Call trace:", lockdep's usage traces).
 * It reads a JS stack, so it is for report paths only, never a fast path.
 */

/** One frame as the kernel's stack dump prints it: the function and "src/…/file.js:line:col". */
export interface StackFrame {
  readonly fn: string;
  readonly loc: string;
}

/** This thread's frames in src/, test/ or bench/ (node_modules and node internals left out), innermost first. */
export function save_stack_trace(): StackFrame[] {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 32;
  const stack = new Error().stack ?? "";
  Error.stackTraceLimit = limit;
  const out: StackFrame[] = [];
  for (const f of stack.split("\n").slice(2)) {
    const m = /^\s*at (?:(.*) \()?(.*?)\)?$/.exec(f);
    const loc = m?.[2] ?? "";
    if (!/\/(src|test|bench)\//.test(loc) || loc.includes("node_modules")) continue;
    out.push({ fn: m?.[1] ?? "<anonymous>", loc: loc.replace(/^.*\/(?=(src|test|bench)\/)/, "") });
  }
  return out;
}

/** "fn (loc)", as a line of a call trace. */
export function frameText(f: StackFrame): string {
  return `${f.fn} (${f.loc})`;
}
