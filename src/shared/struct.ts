/**
 * Struct tables: every arena record is declared once as data (field, type,
 * guard) and its offsets are derived here — nobody writes a byte offset by hand.
 * (thi.ng/wasm-api-bindgen style; offsets pinned by test/struct.test.ts.)
 */

/** Scalar field types. `ptr` is an int32 byte offset into the arena, 0 is NULL. */
export type Scalar = "i32" | "u32" | "ptr" | "f64";

/**
 * What makes concurrent access to a field safe: the name of the lock that
 * protects it (e.g. "vmap_area_lock"), or one of
 * - "atomic": only ever touched through the atomic accessors (src/locks/atomic.ts: Atomics operations, and the
 *   relaxed __READ_ONCE / __WRITE_ONCE),
 * - "init": written before the record is published, read-only afterwards,
 * - "owner": touched only by the CPU that owns the record (per-CPU data).
 */
export type Guard = string;

export interface FieldSpec {
  readonly name: string;
  readonly type: Scalar | StructDef;
  /** Array length; the field is `count` consecutive elements. @defaultValue 1 */
  readonly count?: number;
  readonly guard?: Guard;
}

export interface Field {
  readonly name: string;
  readonly type: Scalar | string;
  readonly offset: number;
  readonly size: number;
  readonly count: number;
  readonly guard: Guard | undefined;
}

export interface StructDef<F extends string = string> {
  readonly name: string;
  /** Size in bytes, a multiple of `align`. */
  readonly size: number;
  readonly align: number;
  /** Byte offset of each field from the start of the record. */
  readonly off: { readonly [K in F]: number };
  readonly fields: readonly Field[];
}

const SCALAR_SIZE: Record<Scalar, number> = { i32: 4, u32: 4, ptr: 4, f64: 8 };

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** Declares a struct: C layout rules (each field aligned to its own alignment). */
export function defineStruct<const T extends readonly FieldSpec[]>(
  name: string,
  specs: T,
): StructDef<T[number]["name"]> {
  let offset = 0;
  let align = 4;
  const fields: Field[] = [];
  const off: Record<string, number> = {};
  for (const s of specs) {
    const count = s.count ?? 1;
    const elemSize = typeof s.type === "string" ? SCALAR_SIZE[s.type] : s.type.size;
    const elemAlign = typeof s.type === "string" ? SCALAR_SIZE[s.type] : s.type.align;
    if (s.name in off) throw new Error(`struct ${name}: duplicate field ${s.name}`);
    offset = alignUp(offset, elemAlign);
    align = Math.max(align, elemAlign);
    off[s.name] = offset;
    fields.push({
      name: s.name,
      type: typeof s.type === "string" ? s.type : s.type.name,
      offset,
      size: elemSize * count,
      count,
      guard: s.guard,
    });
    offset += elemSize * count;
  }
  return { name, size: alignUp(Math.max(offset, 4), align), align, off, fields } as unknown as StructDef<
    T[number]["name"]
  >;
}

/** One line per field: the table a reader checks against the kernel's struct. */
export function describeStruct(s: StructDef): string {
  const rows = s.fields.map(
    (f) =>
      `  +${String(f.offset).padStart(4)} ${f.name.padEnd(22)} ${f.type}${f.count > 1 ? `[${f.count}]` : ""}${f.guard ? `  /* ${f.guard} */` : ""}`,
  );
  return [`struct ${s.name} { /* ${s.size} bytes */`, ...rows, "}"].join("\n");
}
