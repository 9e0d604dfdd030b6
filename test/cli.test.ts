/**
 * The `vmsim` command as a user runs it: the built CLI (dist/, as `npm start`
 * and the bin link run it) in a child process, checked on its stdout, stderr
 * and exit status.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { SPINLOCK_T } from "../src/locks/spinlock.js";
import { describeStruct } from "../src/shared/struct.js";
import { vmsim } from "./helpers/vmsim.js";

describe("vmsim info", () => {
  it.each([
    ["arm64-va48", "    vmalloc : 0xffff000008000000 - 0xffff7dffbfff0000   (129022 GB)"],
    ["arm64-va39", "    vmalloc : 0xffffff8008000000 - 0xffffffbebfff0000   (   250 GB)"],
    ["arm32", "    vmalloc : 0xf0800000 - 0xff800000   ( 240 MB)"],
  ])("prints the %s vmalloc area as the kernel's boot log does", async (layout, line) => {
    const r = await vmsim("info", "--layout", layout);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    const out = r.stdout.split("\n");
    expect(out[out.indexOf("Virtual kernel memory layout:") + (layout === "arm32" ? 1 : 2)]).toBe(line);
    const [start, end] = line.split(": ")[1]!.split("   ")[0]!.split(" - ");
    expect(r.stdout).toMatch(new RegExp(`VMALLOC_START +${start}\\n`));
    expect(r.stdout).toMatch(new RegExp(`VMALLOC_END +${end}\\n`));
  });

  it("reports what the booted machine has", async () => {
    const r = await vmsim("info", "--cpus", "3", "--memory", "16M", "--seed", "9");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("vmsim: kernel 4.19, 3 CPUs, 16 MiB, layout arm64-va48, seed 9");
    expect(r.stdout).toContain("Physical memory: 4096 pages of 4096 bytes (16 MiB)");
    expect(r.stdout).toMatch(/\n {2}CPU2 {2}0x[0-9a-f]{8}\n/);
    expect(r.stdout).toMatch(/\n {2}pte +12 +512 +4 KiB +4 KiB \(order 0\)\n/);
  });

  it("--json prints one object with the layout as full 64-bit hex", async () => {
    const r = await vmsim("info", "--json", "--cpus", "4");
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.config.cpus).toBe(4);
    expect(info.cpus).toHaveLength(4);
    expect(info.memory).toEqual({ pages: 16384, pageSize: 4096, bytes: 64 * 1024 * 1024 });
    expect(info.layout.vmalloc).toMatchObject({ start: "0xffff000008000000", end: "0xffff7dffbfff0000" });
    expect(info.layout.pageOffset).toBe("0xffff800000000000");
    expect(info.pgtable.map((l: { level: string }) => l.level)).toEqual(["pgd", "pud", "pmd", "pte"]);
    expect(info.arena.regions.map((g: { name: string }) => g.name)).toContain("pagedata");
    expect(info.structs.find((s: { name: string }) => s.name === "spinlock_t").size).toBe(SPINLOCK_T.size);
  });

  it("--structs prints the field tables", async () => {
    const r = await vmsim("info", "--structs");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`\n${describeStruct(SPINLOCK_T)}\n`);
  });
});

describe("vmsim: bad arguments", () => {
  it.each([
    [["info", "--bogus"], "unknown option '--bogus'"],
    [["info", "--jsn"], "unknown option '--jsn' (Did you mean --json?)"],
    [["info", "--cpus", "two"], "argument 'two' is invalid. cpus must be an integer in 1..64."],
    [["info", "--cpus", "0"], "cpus must be an integer in 1..64."],
    [["info", "--layout", "x86_64"], "unknown layout; expected one of arm64-va48, arm64-va39, arm32."],
    [["info", "--memory", "65M"], "memory must be a multiple of 4 MiB"],
    [["info", "--memory", "lots"], "expected a size such as 64M or 1G."],
    [["run", "--duration", "soon"], "expected a duration such as 500ms, 15s or 10m."],
    [["info", "extra"], "too many arguments for 'info'"],
    [["frobnicate"], "unknown command 'frobnicate'"],
  ])("%j: one line on stderr, exit 2", async (args, message) => {
    const r = await vmsim(...args);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr.endsWith("\n")).toBe(true);
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^vmsim: error: /);
    expect(r.stderr).toContain(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe("vmsim: the front door", () => {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };

  it.each([["--version"], ["-V"]])("%s prints package.json's version and exits 0", async (flag) => {
    const r = await vmsim(flag);
    expect(r).toEqual({ code: 0, stdout: `${pkg.version}\n`, stderr: "" });
  });

  it("vmsim alone prints the help with every command on stdout and exits 0", async () => {
    const r = await vmsim();
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).toMatch(/^Usage: vmsim \[options\] \[command\]/);
    for (const cmd of ["info", "run", "stress", "exec", "test", "bench", "explore", "replay", "shrink"])
      expect(r.stdout).toMatch(new RegExp(`^  ${cmd} `, "m"));
    expect(r.stdout).toMatch(/-V, --version/);
  });
});
