/**
 * lib/debugobjects.c on one CPU (the main thread after start_kernel, arm32:
 * the first vmalloc is at V = 0xf0800000): an object's life, and vfree's
 * range check (debug_check_no_obj_freed from __vunmap) finding objects in
 * the area it frees.
 *
 *   page  0 1
 *         p .      p: a one-page vmalloc with a tracked object at p + 64
 */
import { beforeEach, describe, expect, it } from "vitest";
import { makeConfig } from "../src/shared/config.js";
import { takeReports } from "../src/shared/report.js";
import { start_kernel } from "../src/workers/boot.js";
import { percpuCpuOnline } from "../src/kernel/cpuhp.js";
import { rcu_cpu_starting } from "../src/rcu/tree.js";
import {
  ODEBUG_STATE_ACTIVE,
  debug_check_no_obj_freed,
  debug_object_activate,
  debug_object_deactivate,
  debug_object_free,
  debug_object_init,
  defineDebugObjDescr,
  enable_object_debug,
} from "../src/lib/debugobjects.js";
import { vfree, vmalloc } from "../src/mm/vmalloc.js";

const fixups: number[] = [];
const descr: number = defineDebugObjDescr({
  name: "test_obj",
  fixup_free: (addr, state) => {
    fixups.push(addr);
    if (state !== ODEBUG_STATE_ACTIVE) return false;
    debug_object_deactivate(addr, descr);
    debug_object_free(addr, descr);
    return true;
  },
});

/** The WARN lines raised since the last call. */
const warns = () =>
  takeReports().map((r) => {
    expect(r.kind).toBe("WARN");
    return r.text;
  });

beforeEach(() => {
  start_kernel(makeConfig({ cpus: 1, layout: "arm32" }));
  rcu_cpu_starting(0);
  percpuCpuOnline();
  takeReports();
  fixups.length = 0;
});

describe("debugobjects", () => {
  it("is off until the debug_objects boot parameter: nothing is tracked, nothing reported", () => {
    const p = vmalloc(4096);
    debug_object_init(p, descr);
    debug_object_activate(p, descr);
    vfree(p);
    debug_object_deactivate(p, descr);
    expect(warns()).toEqual([]);
  });

  it("an object's life without a splat; freeing its memory afterwards finds nothing", () => {
    enable_object_debug();
    const p = vmalloc(4096);
    debug_object_init(p + 64, descr);
    expect(debug_object_activate(p + 64, descr)).toBe(0);
    debug_object_deactivate(p + 64, descr);
    debug_object_free(p + 64, descr);
    vfree(p);
    expect(warns()).toEqual([]);
  });

  it("vfree of an area holding an active object: the splat, the fixup, and the object is gone", () => {
    enable_object_debug();
    const p = vmalloc(4096);
    debug_object_init(p + 64, descr);
    debug_object_activate(p + 64, descr);
    vfree(p);
    expect(warns()).toEqual(["ODEBUG: free active (active state 0) object type: test_obj hint: 0x0"]);
    expect(fixups).toEqual([p + 64]);
    debug_object_deactivate(p + 64, descr);
    expect(warns()).toEqual(["ODEBUG: deactivate not available (active state 0) object type: test_obj hint: 0x0"]);
  });

  it("an initialised object in a freed range is dropped silently; activating it then is a splat", () => {
    enable_object_debug();
    const p = vmalloc(4096);
    debug_object_init(p + 64, descr);
    vfree(p);
    expect(warns()).toEqual([]);
    expect(debug_object_activate(p + 64, descr)).toBe(-22);
    expect(warns()).toEqual(["ODEBUG: activate not available (active state 0) object type: test_obj hint: 0x0"]);
  });

  it("the check covers [address, address + size) only, chunk by chunk", () => {
    enable_object_debug();
    for (const a of [0x10000 - 8, 0x10000, 0x12fff, 0x13000]) {
      debug_object_init(a, descr);
      debug_object_activate(a, descr);
    }
    debug_check_no_obj_freed(0x10000, 0x3000);
    expect(fixups).toEqual([0x10000, 0x12fff]);
    expect(warns()).toHaveLength(2);
  });

  it("re-initialising an active object and activating it twice are splats, five per boot at most", () => {
    enable_object_debug();
    debug_object_init(0x20000, descr);
    debug_object_activate(0x20000, descr);
    debug_object_init(0x20000, descr);
    expect(debug_object_activate(0x20000, descr)).toBe(-22);
    expect(warns()).toEqual([
      "ODEBUG: init active (active state 0) object type: test_obj hint: 0x0",
      "ODEBUG: activate active (active state 0) object type: test_obj hint: 0x0",
    ]);
    for (let i = 0; i < 5; i++) debug_object_activate(0x20000, descr);
    expect(warns()).toHaveLength(3);
  });
});
