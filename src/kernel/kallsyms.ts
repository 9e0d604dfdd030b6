/**
 * Symbol names for "caller" fields (kernel/kallsyms.c's job for %pS): a
 * vm_struct's caller is a return address in the kernel, printed by
 * /proc/vmallocinfo as a symbol. vmsim has no return addresses, so a caller is
 * a symbol id: ksym(name) interns `name` in an arena table and returns its id,
 * and any thread — a CPU that did not intern it, the main thread printing
 * vmallocinfo — turns the id back into the name with ksym_name.
 *
 * The table is open-addressed by a hash of the name. A slot is claimed with a
 * compareExchange on its state word (0 free → 1 being written), the name is
 * written, and the state is published as 2 with Atomics.store: a reader that
 * loads 2 sees the whole name. Ids are slot index + 1 (0 is "no caller").
 * Each thread caches name → id, so the hot path (vmalloc's default caller)
 * is one Map lookup.
 */
import { DEFINE_GLOBAL, I32, U8, machineStopping, onMachineReset, theArena } from "../shared/arena.js";
import { MachineStopped } from "../shared/report.js";
import { defineStruct } from "../shared/struct.js";
import { SP_SPIN, sched_point } from "../sched/sched_point.js";

/** KSYM_NAME_LEN (include/linux/kallsyms.h: 128); vmsim keeps 47 characters and the NUL. */
export const KSYM_NAME_LEN = 48;
/** Slots in the table: distinct caller names a machine can intern. */
export const KSYM_SLOTS = 512;

const FREE = 0;
const WRITING = 1;
const PUBLISHED = 2;

/** One interned name. */
export const KSYM_ENTRY = defineStruct("ksym_entry", [
  /** FREE, WRITING or PUBLISHED; the claim and the publication are Atomics. */
  { name: "state", type: "i32", guard: "atomic" },
  /** Hash of the name (compared before the name). */
  { name: "hash", type: "u32", guard: "init" },
  { name: "name", type: "i32", count: KSYM_NAME_LEN / 4, guard: "init" },
]);
const E = KSYM_ENTRY.off;

/** The table of interned names. */
export const KSYM_TABLE = defineStruct("ksym_table", [
  { name: "entries", type: KSYM_ENTRY, count: KSYM_SLOTS, guard: "atomic" },
]);
const ksym_table = DEFINE_GLOBAL("ksym_table", KSYM_TABLE);

function hashName(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/* Per-thread cache, dropped when the thread attaches to another arena. */
let cacheFor: SharedArrayBuffer | null = null;
let cache = new Map<string, number>();
onMachineReset(() => {
  cacheFor = null;
});

function entry(id: number): number {
  return ksym_table.ptr + KSYM_TABLE.off.entries + (id - 1) * KSYM_ENTRY.size;
}

function nameAt(e: number): string {
  let s = "";
  for (let i = 0; i < KSYM_NAME_LEN; i++) {
    const c = U8[e + E.name + i]!;
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

function waitPublished(e: number): void {
  // A writer between its claim and its publication copies at most 47 bytes: the spin is short.
  while (Atomics.load(I32, (e + E.state) >> 2) !== PUBLISHED) {
    sched_point(SP_SPIN);
    if (machineStopping()) throw new MachineStopped();
  }
}

/**
 * Interns `name` (ASCII, truncated to 47 characters) and returns its symbol
 * id (> 0). Any thread, any context; the same name always gets the same id.
 */
export function ksym(name: string): number {
  const a = theArena();
  if (cacheFor !== a.sab) {
    cacheFor = a.sab;
    cache = new Map();
  }
  const hit = cache.get(name);
  if (hit !== undefined) return hit;
  const key = name.length < KSYM_NAME_LEN ? name : name.slice(0, KSYM_NAME_LEN - 1);
  const hash = hashName(key);
  for (let probe = 0; probe < KSYM_SLOTS; probe++) {
    const id = ((hash + probe) % KSYM_SLOTS) + 1;
    const e = entry(id);
    const st = (e + E.state) >> 2;
    let state = Atomics.load(I32, st);
    if (state === FREE) {
      state = Atomics.compareExchange(I32, st, FREE, WRITING);
      if (state === FREE) {
        I32[(e + E.hash) >> 2] = hash | 0;
        for (let i = 0; i < KSYM_NAME_LEN; i++) U8[e + E.name + i] = i < key.length ? key.charCodeAt(i) & 0x7f : 0;
        // Publishes the hash and the name: a reader that loads PUBLISHED reads them complete.
        Atomics.store(I32, st, PUBLISHED);
        cache.set(name, id);
        return id;
      }
    }
    waitPublished(e);
    if (I32[(e + E.hash) >> 2]! >>> 0 === hash && nameAt(e) === key) {
      cache.set(name, id);
      return id;
    }
  }
  throw new Error(`ksym: symbol table full (${KSYM_SLOTS} names)`);
}

/** The name of symbol id `id`; "" for 0 (no caller), "0x…" for an id never interned. */
export function ksym_name(id: number): string {
  if (id === 0) return "";
  if (!(id >= 1 && id <= KSYM_SLOTS)) return `0x${(id >>> 0).toString(16)}`;
  const e = entry(id);
  if (Atomics.load(I32, (e + E.state) >> 2) !== PUBLISHED) return `0x${(id >>> 0).toString(16)}`;
  return nameAt(e);
}
