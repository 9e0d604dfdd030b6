import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { U8 } from "../src/shared/arena.js";
import { memset } from "../src/lib/string.js";
import { type RecordArea, bootWithRecordArea } from "./helpers/records.js";

let records: RecordArea;
beforeAll(() => {
  records = bootWithRecordArea(4);
});

describe("memset (lib/string.c)", () => {
  it("sets exactly [s, s + count) at every alignment and length, short (store loop) and long (fill)", () => {
    // A guard byte pattern around the range shows any store outside it.
    const area = records.alloc(3 * 4096);
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 7 }),
        fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 200, max: 5000 })),
        fc.integer({ min: 0, max: 255 }),
        (misalign, count, c) => {
          const s = area + 64 + misalign;
          U8.fill(0x5a, area, area + 3 * 4096);
          memset(s, c, count);
          for (let p = area; p < area + 3 * 4096; p++) {
            const want = p >= s && p < s + count ? c : 0x5a;
            if (U8[p] !== want) return false;
          }
          return true;
        },
      ),
      { seed: 7, numRuns: 300 },
    );
  });

  it("keeps only the low byte of c, as the kernel's (char) conversion does", () => {
    const s = records.alloc(64);
    memset(s, 0x16b, 40);
    expect([...U8.subarray(s, s + 40)].every((b) => b === 0x6b)).toBe(true);
  });
});
