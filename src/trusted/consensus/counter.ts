/**
 * A monotonic counter that the host cannot roll back: NVRAM in an HSM, a hardware counter in an
 * enclave, a file in the software build (which then trusts the file's host).
 */
export interface MonotonicCounter {
  read(): number;
  /** Increments durably and returns the new value. */
  increment(): number;
}

/** In-memory counter for tests and the simulator (the simulator keeps it across crashes). */
export class MemoryCounter implements MonotonicCounter {
  constructor(private value = 0) {}
  read(): number {
    return this.value;
  }
  increment(): number {
    this.value += 1;
    return this.value;
  }
}
