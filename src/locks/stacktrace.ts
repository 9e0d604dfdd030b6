/**
 * dump_stack (lib/dump_stack.c, v4.19) for reports: the kernel frames of the
 * JS stack — vmsim's own functions, named as the kernel's — above the check
 * that reports.
 */

/**
 * The frames above the outermost one whose function matches `check` (a checked
 * primitive may call another), innermost first, as
 * "mutex_lock (src/locks/mutex.js:62:5)"; at most `max`.
 */
export function dump_stack_above(check: RegExp, max = 8): string[] {
  const frames = (new Error().stack ?? "").split("\n").slice(1);
  let at = -1;
  frames.forEach((f, i) => {
    if (check.test(f)) at = i;
  });
  const out: string[] = [];
  for (const f of frames.slice(at + 1)) {
    const m = /^\s*at (?:(.*) \()?(.*?)\)?$/.exec(f);
    const loc = m?.[2] ?? "";
    if (!/\/(src|test|bench)\//.test(loc) || loc.includes("node_modules")) continue;
    out.push(`${m?.[1] ?? "<anonymous>"} (${loc.replace(/^.*\/(?=(src|test|bench)\/)/, "")})`);
    if (out.length === max) break;
  }
  return out;
}
