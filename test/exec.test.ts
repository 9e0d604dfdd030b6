/**
 * `vmsim exec` as the tools that drive it see it (docs/exec.md): the built
 * CLI in a child process, a script in (a file or stdin), JSON result lines out.
 *
 * arm64-va48, as vmalloc_init leaves it (src/mm/v4.19/vmalloc.ts): VMALLOC_START is
 * 0xffff000008000000 and the kernel image's five early VM_MAP areas start at
 * +0x80000, so the first small vmallocs land in the 512 KiB hole below .text:
 *
 *   0xffff0000080 00000     03000     05000          80000                     9023000   9400000
 *                 [ a  a  g ][ b  g ]  ...free...  [ .text .rodata .init .data ]  ...   [ vmap_block (4 MiB) ...
 *
 * (g = guard page). vm_map_ram's first block is the first VMAP_BLOCK_SIZE-aligned
 * hole above the image.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { execScript } from "../src/cli/exec.js";
import { makeConfig } from "../src/shared/config.js";

const MAIN = fileURLToPath(new URL("../dist/src/cli/main.js", import.meta.url));

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout parsed, one object per line. */
  readonly results: Record<string, unknown>[];
}

/** Runs `vmsim exec ARGS`, feeding `stdin` to it. */
function vmsimExec(args: string[], stdin = ""): Promise<Run> {
  if (!existsSync(MAIN)) throw new Error("dist/ is missing: run `npm run build` first");
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, "exec", ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => {
      const lines = stdout.split("\n").filter((l) => l !== "");
      resolve({ code: code ?? -1, stdout, stderr, results: lines.map((l) => JSON.parse(l)) });
    });
    child.stdin.end(stdin);
  });
}

const dir = mkdtempSync(join(tmpdir(), "vmsim-exec-"));
let scripts = 0;

/** Writes `ops` (objects or raw lines) as a script file and runs it with --script. */
function runScript(ops: (object | string)[], args: string[] = []): Promise<Run> {
  const file = join(dir, `script-${scripts++}.jsonl`);
  writeFileSync(file, `${ops.map((o) => (typeof o === "string" ? o : JSON.stringify(o))).join("\n")}\n`);
  return vmsimExec([...args, "--script", file]);
}

/** The kernel image's early areas on arm64-va48, as vmallocinfo prints them. */
const IMAGE = [
  "0xffff000008080000-0xffff000008a10000 10027008 paging_init phys=0x0000000040080000 vmap",
  "0xffff000008a10000-0xffff000008d90000 3670016 paging_init phys=0x0000000040a10000 vmap",
  "0xffff000008d90000-0xffff000008e40000  720896 paging_init phys=0x0000000040d90000 vmap",
  "0xffff000008e40000-0xffff000008f10000  851968 paging_init phys=0x0000000040e40000 vmap",
  "0xffff000008f10000-0xffff000009023000 1126400 paging_init phys=0x0000000040f10000 vmap",
];

/** A meminfo result's fields (the names are /proc/meminfo's, as docs/exec.md's result carries them). */
function meminfo(usedKb: number): Record<string, number> {
  // biome-ignore lint/style/useNamingConvention: /proc/meminfo's field names
  return { VmallocTotal: 135290290112, VmallocUsed: usedKb, VmallocChunk: 0 };
}

describe("vmsim exec: two areas, one freed, then /proc/vmallocinfo", () => {
  it("gives exact addresses on arm64-va48, and vmallocinfo shows a's area unpurged", async () => {
    const r = await runScript(
      [
        { op: "vmalloc", size: 8192, as: "a" },
        { op: "vmalloc", size: 4096, as: "b" },
        { op: "vfree", ref: "a" },
        { op: "vmallocinfo" },
      ],
      ["--cpus", "1"],
    );
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.results).toEqual([
      { op: "vmalloc", ok: true, as: "a", addr: "0xffff000008000000" },
      { op: "vmalloc", ok: true, as: "b", addr: "0xffff000008003000" },
      { op: "vfree", ok: true },
      {
        op: "vmallocinfo",
        ok: true,
        lines: [
          "0xffff000008000000-0xffff000008003000   12288 unpurged vm_area",
          "0xffff000008003000-0xffff000008005000    8192 vmalloc pages=1 vmalloc",
          ...IMAGE,
        ],
      },
    ]);
  });

  it("reads the same script from stdin when there is no --script", async () => {
    const r = await vmsimExec(
      ["--cpus", "1"],
      '{"op":"vmalloc","size":8192,"as":"a"}\n{"op":"vmalloc","size":4096,"as":"b"}\n',
    );
    expect(r.code).toBe(0);
    expect(r.results.map((x) => x["addr"])).toEqual(["0xffff000008000000", "0xffff000008003000"]);
  });

  it("is deterministic: the same script twice gives the same output, on 2 CPUs too", async () => {
    const ops = [
      { op: "vmalloc", size: 20000, as: "a", cpu: 1 },
      { op: "vm_map_ram", pages: 3, as: "r", cpu: 1 },
      { op: "vfree", ref: "a", cpu: 0 },
      { op: "vmalloc", size: 4096 },
      { op: "vmallocinfo", cpu: 1 },
    ];
    const [x, y] = [await runScript(ops, ["--cpus", "2"]), await runScript(ops, ["--cpus", "2"])];
    expect(x.code).toBe(0);
    expect(x.stdout).toBe(y.stdout);
  });
});

describe("vmsim exec: every op", () => {
  it("allocates, maps, reads, writes, frees and reports as the kernel does", async () => {
    /*
     *  0xffff0000080 00000   03000   06000          0a000      80000         9400000   9404000
     *               [ a a g ][ z z g ][ m m m g ] ...free...  [ image ] ... [ r r r r ......block...... ]
     */
    const r = await runScript([
      { op: "vmalloc", size: 8192, align: 4096, as: "a" },
      { op: "vzalloc", size: 5000, as: "z", cpu: 1 },
      { op: "write", ref: "a", offset: 4090, hex: "00112233445566778899" },
      { op: "read", ref: "a", offset: 4090, len: 10 },
      { op: "read", ref: "z", offset: 4000, len: 8 },
      { op: "vmap", pages: 3, as: "m" },
      { op: "write", addr: "0xffff000008006ffe", offset: 0, hex: "cafe" },
      { op: "read", ref: "m", offset: 4094, len: 2 },
      { op: "vm_map_ram", pages: 4, as: "r" },
      { op: "meminfo" },
      { op: "check" },
      { op: "vunmap", ref: "m" },
      { op: "vm_unmap_ram", ref: "r", pages: 4 },
      { op: "vfree", ref: "a" },
      { op: "vfree", addr: "0xffff000008003000", cpu: 1 },
      { op: "purge" },
      { op: "meminfo" },
      { op: "vmallocinfo" },
      { op: "check" },
    ]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    const [a, z, w, ra, rz, m, wm, rm, ram, mem, check, vunmap, unmapRam, fa, fz, purge, mem2, info, check2] =
      r.results;
    expect(a).toEqual({ op: "vmalloc", ok: true, as: "a", addr: "0xffff000008000000" });
    expect(z).toEqual({ op: "vzalloc", ok: true, as: "z", cpu: 1, addr: "0xffff000008003000" });
    expect(w).toEqual({ op: "write", ok: true });
    expect(ra).toEqual({ op: "read", ok: true, hex: "00112233445566778899" });
    expect(rz).toEqual({ op: "read", ok: true, hex: "0000000000000000" });
    expect(m).toEqual({ op: "vmap", ok: true, as: "m", addr: "0xffff000008006000" });
    expect(wm).toEqual({ op: "write", ok: true });
    expect(rm).toEqual({ op: "read", ok: true, hex: "cafe" });
    expect(ram).toEqual({ op: "vm_map_ram", ok: true, as: "r", addr: "0xffff000009400000" });
    // a and z: 2 pages each (vmap's and vm_map_ram's pages are exec's, not vmalloc's).
    expect(mem).toEqual({ op: "meminfo", ok: true, ...meminfo(16) });
    expect(check).toEqual({ op: "check", ok: true, violations: [] });
    for (const x of [vunmap, unmapRam, fa, fz, purge]) expect(x).toMatchObject({ ok: true });
    expect(fz).toEqual({ op: "vfree", ok: true, cpu: 1 });
    expect(mem2).toMatchObject(meminfo(0));
    // All purged, the vmap block too: every page it handed out came back (purge_fragmented_blocks).
    expect(info).toEqual({ op: "vmallocinfo", ok: true, lines: IMAGE });
    expect(check2).toEqual({ op: "check", ok: true, violations: [] });
  });

  it("vm_map_ram carves each CPU's own block: CPU 1's first map opens a second block", async () => {
    const r = await runScript(
      [
        { op: "vm_map_ram", pages: 2, cpu: 0 },
        { op: "vm_map_ram", pages: 1, cpu: 1 },
        { op: "vm_map_ram", pages: 1, cpu: 0 },
        { op: "check" },
      ],
      ["--cpus", "2"],
    );
    expect(r.results.map((x) => x["addr"] ?? x["violations"])).toEqual([
      "0xffff000009400000",
      "0xffff000009800000",
      "0xffff000009402000",
      [],
    ]);
  });

  it("an irq-context vfree is deferred: vmallocinfo shows the area until flush_work", async () => {
    const live = "0xffff000008000000-0xffff000008003000   12288 vmalloc pages=2 vmalloc";
    const unpurged = "0xffff000008000000-0xffff000008003000   12288 unpurged vm_area";
    const r = await runScript(
      [
        { op: "vmalloc", size: 8192, as: "a", cpu: 1 },
        { op: "vfree", ref: "a", irq: true, cpu: 1 },
        { op: "vmallocinfo" },
        { op: "meminfo" },
        { op: "check" },
        { op: "flush_work" },
        { op: "vmallocinfo" },
        { op: "purge" },
        { op: "vmallocinfo" },
      ],
      ["--cpus", "2"],
    );
    expect(r.code).toBe(0);
    const [, vfree, before, mem, check, flush, after, , purged] = r.results;
    expect(vfree).toEqual({ op: "vfree", ok: true, cpu: 1 });
    expect((before!["lines"] as string[])[0]).toBe(live);
    expect(mem).toMatchObject(meminfo(8));
    expect(check).toMatchObject({ violations: [] });
    expect(flush).toEqual({ op: "flush_work", ok: true });
    expect((after!["lines"] as string[])[0]).toBe(unpurged);
    expect(purged!["lines"]).toEqual(IMAGE);
  });

  it("runs pending deferred work once more at the end of the script", async () => {
    // A deferred vfree of an address the kernel cannot free: its WARN comes from free_work, at the end.
    const r = await runScript([
      { op: "vmalloc", size: 4096, as: "a" },
      { op: "vfree", addr: "0xffff000008000800", irq: true },
    ]);
    expect(r.code).toBe(0);
    expect(r.results[1]).toEqual({ op: "vfree", ok: true });
    expect(r.stderr).toBe(
      "vmsim: exec: final flush_work: [CPU0] WARN: Trying to vfree() bad address (0xffff000008000800)\n",
    );
  });

  it("a read after vfree is a fault: ok false with the oops", async () => {
    const r = await runScript([
      { op: "vmalloc", size: 4096, as: "a" },
      { op: "vfree", ref: "a" },
      { op: "read", ref: "a", offset: 16, len: 4 },
    ]);
    expect(r.results[2]).toMatchObject({
      op: "read",
      ok: false,
      error: "Unable to handle kernel paging request at virtual address 0xffff000008000010",
    });
    expect((r.results[2]!["reports"] as string[])[0]).toMatch(/^fault: Unable to handle kernel paging request/);
    expect(r.results[2]).not.toHaveProperty("hex");
  });

  it("a read through a stale TLB entry after vfree is reported, and served", async () => {
    const r = await runScript([
      { op: "vzalloc", size: 4096, as: "a" },
      { op: "read", ref: "a", offset: 0, len: 2 },
      { op: "vfree", ref: "a" },
      { op: "read", ref: "a", offset: 0, len: 2 },
    ]);
    expect(r.results[3]).toMatchObject({ op: "read", ok: false, hex: "0000" });
    expect(r.results[3]!["error"]).toMatch(
      /^CPU0: read at virtual address 0xffff000008000000 served by a stale TLB entry/,
    );
  });

  it("vfree of an address that is no vmalloc area: ok false with the kernel's WARN, nothing changes", async () => {
    const r = await runScript([
      { op: "vmalloc", size: 4096, as: "a" },
      { op: "vmallocinfo" },
      { op: "vfree", addr: "0xffff000010000000" },
      { op: "vunmap", addr: "0xffff000008002000" },
      { op: "vmallocinfo" },
      { op: "check" },
    ]);
    expect(r.results[2]).toEqual({
      op: "vfree",
      ok: false,
      error: "Trying to vfree() nonexistent vm area (0xffff000010000000)",
      reports: ["WARN: Trying to vfree() nonexistent vm area (0xffff000010000000)"],
    });
    expect(r.results[3]).toMatchObject({
      ok: false,
      error: "Trying to vfree() nonexistent vm area (0xffff000008002000)",
    });
    expect(r.results[4]).toEqual(r.results[1]);
    expect(r.results[5]).toMatchObject({ violations: [] });
  });

  it("a NULL from the kernel is addr null, ok false, in the kernel's words", async () => {
    const r = await runScript(
      [
        { op: "vmalloc", size: 0 },
        { op: "vmalloc", size: 300 * 1024 * 1024 },
      ],
      ["--layout", "arm32", "--memory", "16M"],
    );
    expect(r.results[0]).toMatchObject({ op: "vmalloc", ok: false, addr: null });
    expect(r.results[0]!["error"]).toMatch(/vmalloc: allocation failure: 0 bytes/);
    // More pages than the machine has: refused before any address space is looked for.
    expect(r.results[1]).toMatchObject({ ok: false, addr: null });
    expect(r.results[1]!["error"]).toMatch(/vmalloc: allocation failure: 314572800 bytes/);
  });

  it("a label whose allocation returned NULL names NULL: vfree and vunmap of it are no-ops, a load or store faults at 0", async () => {
    const r = await runScript([
      { op: "vmalloc", size: 0, as: "n" },
      { op: "vm_map_ram", pages: 100_000, as: "r" },
      { op: "vfree", ref: "n" },
      { op: "vunmap", ref: "n" },
      { op: "vfree", ref: "r", irq: true },
      { op: "read", ref: "n", offset: 0, len: 4 },
      { op: "write", ref: "n", offset: 16, hex: "00" },
      { op: "read", ref: "n", offset: 8192, len: 1 },
      { op: "vfree", ref: "never" },
      { op: "check" },
    ]);
    expect(r.code).toBe(0);
    expect(r.results.slice(0, 2).map((x) => [x["as"], x["addr"], x["ok"]])).toEqual([
      ["n", null, false],
      ["r", null, false],
    ]);
    // vfree(NULL) and vunmap(NULL) return at once, from interrupt context too.
    expect(r.results.slice(2, 5)).toEqual([
      { op: "vfree", ok: true },
      { op: "vunmap", ok: true },
      { op: "vfree", ok: true },
    ]);
    const fault = (what: string, addr: string) => `Unable to handle kernel ${what} at virtual address ${addr}`;
    expect(r.results.slice(5, 8).map((x) => [x["ok"], x["error"], x["reports"]])).toEqual([
      [
        false,
        fault("NULL pointer dereference", "0x0000000000000000"),
        [`fault: ${fault("NULL pointer dereference", "0x0000000000000000")}`],
      ],
      [
        false,
        fault("NULL pointer dereference", "0x0000000000000010"),
        [`fault: ${fault("NULL pointer dereference", "0x0000000000000010")}`],
      ],
      [
        false,
        fault("paging request", "0x0000000000002000"),
        [`fault: ${fault("paging request", "0x0000000000002000")}`],
      ],
    ]);
    // Only a label no line defined is unknown.
    expect(r.results[8]).toEqual({ op: "vfree", ok: false, error: 'vfree: unknown label "never"' });
    expect(r.results[9]).toEqual({ op: "check", ok: true, violations: [] });
  });

  it("exhausting arm32's 240 MB area gives the kernel's vmap allocation failure", async () => {
    /*
     *  0xf0800000        0xf5800000        0xfa800000        0xff800000 = VMALLOC_END
     *  [ 80 MiB vm_map_ram ][ 80 MiB vm_map_ram ][ 80 MiB vm_map_ram ]   full: no 4 MiB vmap block fits
     */
    const r = await runScript(
      [
        { op: "vm_map_ram", pages: 20480 },
        { op: "vm_map_ram", pages: 20480 },
        { op: "vm_map_ram", pages: 20480 },
        { op: "vm_map_ram", pages: 1 },
        { op: "check" },
      ],
      ["--layout", "arm32", "--memory", "256M"],
    );
    expect(r.results.slice(0, 3).map((x) => x["addr"])).toEqual(["0xf0800000", "0xf5800000", "0xfa800000"]);
    expect(r.results[3]).toMatchObject({
      ok: false,
      addr: null,
      error: "vmap allocation for size 4194304 failed: use vmalloc=<size> to increase size",
    });
    expect(r.results[4]).toMatchObject({ violations: [] });
  });

  it("a BUG stops the machine: that line and every later one fail, exit status 1", async () => {
    const r = await runScript([
      { op: "vmalloc", size: 4096, irq: true },
      { op: "vmalloc", size: 4096 },
      "",
      { op: "bogus" },
    ]);
    expect(r.code).toBe(1);
    expect(r.results).toHaveLength(3);
    expect(r.results[0]).toMatchObject({ op: "vmalloc", ok: false });
    expect(r.results[0]!["error"]).toMatch(
      /^CPU0: KernelBug: kernel BUG at mm\/vmalloc.c: __get_vm_area_node: in_interrupt\(\)/,
    );
    expect(r.results[1]).toMatchObject({
      ok: false,
      error: expect.stringMatching(/^the machine has stopped: CPU0: KernelBug/),
    });
    expect(r.results[2]).toMatchObject({ ok: false, error: expect.stringMatching(/^unknown op "bogus"/) });
    expect(r.stderr).toMatch(/^vmsim: exec: the machine stopped: CPU0: KernelBug/);
  });
});

describe("vmsim exec: malformed lines", () => {
  it("answer ok false naming the problem, skip blank lines, and the run goes on", async () => {
    const r = await runScript(
      [
        "not json",
        "[1,2]",
        "",
        "   ",
        { op: "frobnicate" },
        { size: 4096 },
        { op: 7 },
        { op: "vmalloc" },
        { op: "vmalloc", size: "4k", as: "x" },
        { op: "vmalloc", size: -1 },
        { op: "vmalloc", size: 4096, align: 3 },
        { op: "vmalloc", size: 4096, algin: 4096 },
        { op: "vfree", ref: "nope" },
        { op: "vfree" },
        { op: "vfree", ref: "a", addr: "0xffff000008000000" },
        { op: "vfree", addr: "8000000" },
        { op: "read", addr: "0xffff000008000000", offset: 0 },
        { op: "write", addr: "0xffff000008000000", offset: 0, hex: "abc" },
        { op: "purge", cpu: 2 },
        { op: "purge", cpu: "0" },
        { op: "purge", irq: 1 },
        { op: "vmalloc", size: 4096, as: "a" },
      ],
      ["--cpus", "2"],
    );
    expect(r.code).toBe(0);
    expect(r.results.map((x) => [x["op"], x["ok"], x["error"]])).toEqual([
      [null, false, `not JSON: Unexpected token 'o', "not json" is not valid JSON`],
      [null, false, "not a JSON object: [1,2]"],
      [
        "frobnicate",
        false,
        'unknown op "frobnicate"; expected one of vmalloc, vzalloc, vfree, vmap, vunmap, vm_map_ram, vm_unmap_ram, write, read, purge, flush_work, vmallocinfo, meminfo, check',
      ],
      [null, false, 'missing "op"'],
      [7, false, '"op" must be a string, got 7'],
      ["vmalloc", false, 'vmalloc: missing "size"'],
      ["vmalloc", false, 'vmalloc: "size" must be a non-negative integer (bytes), got "4k"'],
      ["vmalloc", false, 'vmalloc: "size" must be a non-negative integer (bytes), got -1'],
      ["vmalloc", false, 'vmalloc: "align" must be a power of two (bytes), got 3'],
      ["vmalloc", false, 'vmalloc: unknown argument "algin"'],
      ["vfree", false, 'vfree: unknown label "nope"'],
      ["vfree", false, 'vfree: missing "ref" (a label) or "addr" (a hex address)'],
      ["vfree", false, 'vfree: give "ref" or "addr", not both'],
      [
        "vfree",
        false,
        'vfree: "addr" must be a kernel virtual address as a hex string such as "0xffff000008000000", got "8000000"',
      ],
      ["read", false, 'read: missing "len"'],
      [
        "write",
        false,
        'write: "hex" must be bytes as a hex string of at most 1048576 bytes (an even number of hex digits), got "abc"',
      ],
      ["purge", false, "no CPU 2 (the machine has 2: 0..1)"],
      ["purge", false, '"cpu" must be an integer, got "0"'],
      ["purge", false, '"irq" must be true or false, got 1'],
      ["vmalloc", true, undefined],
    ]);
    // Labels and CPUs are echoed as given, also on a malformed line.
    expect(r.results[6]).toMatchObject({ as: "x" });
    expect(r.results[16]).toMatchObject({ cpu: 2 });
    expect(r.results[19]).toEqual({ op: "vmalloc", ok: true, as: "a", addr: "0xffff000008000000" });
  });
});

describe("vmsim exec: what fuzzing found (test/fuzz.test.ts)", () => {
  it("a key named like a member of Object.prototype is an unknown argument, not a silent extra", async () => {
    const r = await runScript([
      '{"__proto__":1,"op":"vmap","pages":1}',
      { op: "purge", toString: 1 },
      { op: "vfree", constructor: "x", ref: "a" },
    ]);
    expect(r.code).toBe(0);
    expect(r.results.map((x) => [x["op"], x["ok"], x["error"]])).toEqual([
      ["vmap", false, 'vmap: unknown argument "__proto__"'],
      ["purge", false, 'purge: unknown argument "toString"'],
      ["vfree", false, 'vfree: unknown argument "constructor"'],
    ]);
  });

  it("execScript, the library call, leaves process.stdout's listeners as it found them", async () => {
    const before = process.stdout.listenerCount("error");
    for (let i = 0; i < 2; i++) {
      const out: string[] = [];
      const code = await execScript(
        makeConfig({ cpus: 1, workqueue: "explicit" }),
        Readable.from(['{"op":"purge"}\n']),
        (l) => out.push(l),
      );
      expect([code, out]).toEqual([0, ['{"op":"purge","ok":true}\n']]);
    }
    expect(process.stdout.listenerCount("error")).toBe(before);
  });
});

describe("vmsim exec: bad command-line arguments", () => {
  it.each([
    [
      ["--kernel", "5.4"],
      "vmsim: error: option '--kernel <version>' argument '5.4' is invalid. unknown kernel; expected one of 4.19, 5.10, 6.12.",
    ],
    // --alloc gave way to the machine flag --kernel.
    [["--alloc", "legacy"], "vmsim: error: unknown option '--alloc'"],
    [["--cpus", "0"], "vmsim: error: option '--cpus <n>' argument '0' is invalid. cpus must be an integer in 1..64."],
    [
      ["--layout", "x86"],
      "vmsim: error: option '--layout <name>' argument 'x86' is invalid. unknown layout; expected one of arm64-va48, arm64-va39, arm32.",
    ],
    [["--memory", "3M"], "vmsim: error: memory must be a multiple of 4 MiB (the largest buddy block), got 3145728"],
    [
      ["--seed", "-1"],
      "vmsim: error: option '--seed <s>' argument '-1' is invalid. seed must be an integer in 0..4294967295.",
    ],
    [
      ["--script", "/nonexistent/s.jsonl"],
      "vmsim: error: cannot read the script: ENOENT: no such file or directory, open '/nonexistent/s.jsonl'",
    ],
    [["--workqueue", "auto"], "vmsim: error: unknown option '--workqueue'"],
  ])("%j: exit 2 with one line on stderr", async (args, line) => {
    const r = await vmsimExec(args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(`${line}\n`);
  });
});
