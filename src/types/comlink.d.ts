/* comlink ships ESM builds without .d.mts files; these point TypeScript at its own declarations. */
declare module "comlink/dist/esm/comlink.mjs" {
  export * from "comlink";
}
declare module "comlink/dist/esm/node-adapter.mjs" {
  import type { Endpoint } from "comlink";
  export interface NodeEndpoint {
    // biome-ignore lint/suspicious/noExplicitAny: matches both worker_threads MessagePort and Worker
    postMessage(message: any, transfer?: any): void;
    // biome-ignore lint/suspicious/noExplicitAny: as above
    on(type: string, listener: (...args: any[]) => void): void;
    // biome-ignore lint/suspicious/noExplicitAny: as above
    off(type: string, listener: (...args: any[]) => void): void;
    start?: () => void;
  }
  export default function nodeEndpoint(nep: NodeEndpoint): Endpoint;
}
