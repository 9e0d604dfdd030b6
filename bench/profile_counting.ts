/**
 * The counting preload of bench/profile.ts. Its counting child loads this into
 * every CPU worker before the worker's own module (never into a normal run:
 * nothing here touches the code the timed runs execute). It counts
 *
 * - Atomics operations, by method (the global Atomics replaced by wrappers
 *   that unwrap the counting views below),
 * - element reads and writes of the arena's typed-array views (a view made
 *   of the whole SharedArrayBuffer — arena.ts's bindViews — becomes a
 *   counting Proxy; subarrays taken from it are not counted),
 * - every function's calls (V8 precise coverage with call counts, through
 *   the inspector of the worker's own isolate),
 *
 * and answers each "collect" on the BroadcastChannel {@link PROFILE_CHANNEL}
 * with the counts since the previous collect.
 */
import { Session } from "node:inspector/promises";
import { BroadcastChannel, threadId } from "node:worker_threads";

/** The channel the counting child and its workers talk on. */
export const PROFILE_CHANNEL = "vmsim-profile-counts";

/** One worker's counts since its previous collect. */
export interface WorkerCounts {
  readonly threadId: number;
  readonly atomics: Record<string, number>;
  readonly reads: number;
  readonly writes: number;
  /** Calls by "name path" (path relative to dist/, e.g. src/mm/slab.js). */
  readonly calls: Record<string, number>;
}

/** Is this the counting worker (not the main thread that imports the type)? Install only there. */
const worker = threadId !== 0;

const atomics: Record<string, number> = {};
let reads = 0;
let writes = 0;
const targets = new WeakMap<object, object>();

function installAtomics(): void {
  const real = Atomics as unknown as Record<string, (...a: unknown[]) => unknown>;
  const counting: Record<string | symbol, unknown> = {};
  for (const key of Reflect.ownKeys(Atomics)) {
    const v = (Atomics as unknown as Record<string | symbol, unknown>)[key];
    if (typeof v !== "function" || typeof key !== "string") {
      counting[key] = v;
      continue;
    }
    atomics[key] = 0;
    counting[key] = (view: object, ...rest: unknown[]) => {
      atomics[key]!++;
      return real[key]!.call(Atomics, targets.get(view) ?? view, ...rest);
    };
  }
  Reflect.set(globalThis, "Atomics", counting);
}

/** A canonical element index ("0".."9…"): the keys a typed-array element access uses. */
const isIndex = (key: string | symbol) => typeof key === "string" && key.charCodeAt(0) >= 48 && key.charCodeAt(0) <= 57;

function countingView<T extends object>(view: T): T {
  const proxy = new Proxy(view, {
    get(t, key) {
      if (isIndex(key)) {
        reads++;
        return (t as Record<string, unknown>)[key as string];
      }
      const v = Reflect.get(t, key, t);
      return typeof v === "function" ? v.bind(t) : v;
    },
    set(t, key, value) {
      if (isIndex(key)) writes++;
      return Reflect.set(t, key, value, t);
    },
  });
  targets.set(proxy, view);
  return proxy;
}

/** The arena's views: `new Int32Array(sab)` of a whole SharedArrayBuffer returns a counting Proxy. */
function installViews(): void {
  for (const name of ["Int32Array", "Uint32Array", "Uint16Array", "Uint8Array", "Float64Array"] as const) {
    const Real = globalThis[name] as unknown as new (...a: unknown[]) => object;
    const Counting = function (this: unknown, ...args: unknown[]) {
      const v = new Real(...args);
      return args.length === 1 && args[0] instanceof SharedArrayBuffer ? countingView(v) : v;
    } as unknown as typeof Real;
    Object.setPrototypeOf(Counting, Real);
    Object.defineProperty(Counting, "prototype", { value: Real.prototype });
    (globalThis as Record<string, unknown>)[name] = Counting;
  }
}

interface Coverage {
  readonly result: { url: string; functions: { functionName: string; ranges: { count: number }[] }[] }[];
}

/**
 * Calls by function. Function-level counts only: with block counts on
 * (`detailed`), V8 lost the calls of small functions once optimized code ran
 * them (set_pte's vanished from the second run), so node visits inside a
 * function's loop are not counted here.
 */
function callsOf(cov: Coverage): Record<string, number> {
  const calls: Record<string, number> = {};
  for (const script of cov.result) {
    const at = script.url.indexOf("/dist/");
    if (!script.url.startsWith("file:") || at < 0) continue;
    const path = script.url.slice(at + "/dist/".length);
    for (const f of script.functions) {
      const n = f.ranges[0]?.count ?? 0;
      if (n === 0 || f.functionName === "") continue;
      const key = `${f.functionName} ${path}`;
      calls[key] = (calls[key] ?? 0) + n;
    }
  }
  return calls;
}

if (worker) {
  installAtomics();
  installViews();
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.startPreciseCoverage", { callCount: true, detailed: false });
  const channel = new BroadcastChannel(PROFILE_CHANNEL);
  channel.unref();
  channel.onmessage = async () => {
    const cov = (await session.post("Profiler.takePreciseCoverage")) as unknown as Coverage;
    const counts: WorkerCounts = { threadId, atomics: { ...atomics }, reads, writes, calls: callsOf(cov) };
    for (const k of Object.keys(atomics)) atomics[k] = 0;
    reads = 0;
    writes = 0;
    channel.postMessage(counts);
  };
}
