/**
 * Where a hardware root of trust plugs in (docs/attestation.md). Browser-safe types only.
 *
 * A vault member runs the vault core on a device (an HSM, or a TEE). The core generates the
 * member's identity keys inside and writes an attestation body (`bkv-attestation/v1`); the device
 * signs that body with a key only it holds, and that key chains to the vendor's root. Everything
 * else (ceremony, evidence, witness, audit) only sees `AttestationRecord`s.
 */
import type { SignedDocument } from '../../shared/attestation/format.js';

export interface AttestationBackend {
  /** e.g. "software", "nshield", "luna", "sev-snp", "nitro" */
  readonly kind: string;
  /** The device's certificate, signed by the vendor root (`bkv-device-cert/v1`). */
  deviceCertificate(): SignedDocument;
  /** The device serial named in the certificate. */
  readonly device: string;
  /**
   * Signs an attestation body produced by the core running on this device. A hardware backend
   * binds the body to its native evidence (a key-attestation blob, or an SEV-SNP/TDX/Nitro report
   * whose report data is SHA-256 of the body).
   */
  signAttestation(body: Uint8Array): Promise<Uint8Array>;
}

/** Where the core keeps its own secrets (the HSM's internal key store). Write-only for everyone else. */
export interface MemberKeyStore {
  put(name: 'member.bin' | 'fleet-secrets.bin', bytes: Uint8Array): Promise<void>;
}
