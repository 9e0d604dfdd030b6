/** The typed control plane between the main thread and a CPU worker. */
import type { Report } from "../shared/report.js";

export interface WorkError {
  readonly name: string;
  readonly message: string;
  readonly stack?: string | undefined;
}

export type WorkResult =
  | { readonly ok: true; readonly value: unknown; readonly reports: Report[]; readonly seqs?: number[] }
  | {
      readonly ok: false;
      readonly error: WorkError;
      /** True when this CPU only unwound because another CPU stopped the machine. */
      readonly stopped?: boolean;
      readonly reports: Report[];
      /** Each report's number in the machine's order of reports (all CPUs): runAll lists them so. */
      readonly seqs?: number[];
    };

export interface CpuApi {
  /** Runs workload `name`; `reset`: the machine was restored since this CPU's last call (forget the old contents first). */
  run(name: string, args: unknown, reset: boolean): WorkResult;
}
