/**
 * Read access to a witness, in-process or over HTTP, so the bundle builder, the audit and the demo
 * work the same way against either.
 */
import type { WitnessLog } from './log.js';
import type { EpochRecord, WitnessKeyInfo } from './protocol.js';

export interface WitnessReader {
  keyInfo(): Promise<WitnessKeyInfo>;
  namespaces(): Promise<{ namespace: string; latestEpoch: number }[]>;
  latestEpoch(namespace: string): Promise<number>;
  epochRecord(namespace: string, epoch: number): Promise<EpochRecord>;
  artifact(namespace: string, epoch: number): Promise<Uint8Array>;
  /** The latest signed checkpoint note. */
  checkpoint(): Promise<string>;
  inclusionProof(index: number, size: number): Promise<Uint8Array[]>;
  consistencyProof(size1: number, size2: number): Promise<Uint8Array[]>;
}

export function localReader(log: WitnessLog): WitnessReader {
  return {
    keyInfo: async () => log.keyInfo(),
    namespaces: async () => log.namespaces(),
    latestEpoch: async (ns) => log.latestEpoch(ns),
    epochRecord: async (ns, e) => log.epochRecord(ns, e),
    artifact: async (ns, e) => log.artifact(ns, e),
    checkpoint: async () => log.checkpoint().note,
    inclusionProof: async (i, s) => log.inclusionProof(i, s),
    consistencyProof: async (a, b) => log.consistencyProof(a, b),
  };
}
