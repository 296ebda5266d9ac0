/**
 * How a client gets fleet keys it can trust. Browser-safe.
 *
 *  - pinned: the fleet keys are in the client configuration (WhatsApp mode);
 *  - over-the-air: only witness keys are pinned; the gateway serves a validation bundle which is
 *    verified completely, and the newest checkpoint and epoch seen are persisted in a
 *    CheckpointStore so that a split view or a replayed older epoch is refused later.
 */
import { BkvError } from '../../shared/errors.js';
import { verifyCheckpoint, type SignedCheckpoint } from './checkpoint.js';
import { decodeBase64, parseDecimal } from '../../shared/fleet-formats/encoding.js';
import { parseVerifierKey, type NoteVerifier } from '../../shared/fleet-formats/note.js';
import { checkpointKey, epochKey, type CheckpointStore } from './store.js';
import { verifyValidationBundle, type ValidationBundle } from './bundle.js';
import type { FleetArtifact } from '../../shared/fleet-formats/artifact.js';
import { parseWitnessPolicy, type WitnessPolicy } from './policy.js';

export interface ResolvedFleetKeys {
  readonly mode: 'pinned' | 'over-the-air';
  readonly namespace: string;
  readonly epoch: number;
  readonly opaqueServerPublicKey: Uint8Array;
  readonly encryptionPublicKey: Uint8Array;
  readonly signingPublicKey: Uint8Array;
  /** The validated artifact (over-the-air only). */
  readonly artifact?: FleetArtifact;
}

type KeyInput = Uint8Array | string; // raw bytes or standard base64

export interface PinnedFleetConfig {
  mode: 'pinned';
  namespace: string;
  epoch?: number;
  keys: { opaqueServerPublicKey: KeyInput; encryptionPublicKey: KeyInput; signingPublicKey: KeyInput };
}

export interface OverTheAirFleetConfig {
  mode: 'over-the-air';
  namespace: string;
  /** Pinned witness keys as note verifier keys: "origin+keyid+base64(0x01‖pubkey)". */
  witnesses: readonly string[];
  store: CheckpointStore;
  /** Clock for the artifact validity window; defaults to Date.now. Pass null to skip the check. */
  now?: (() => number) | null;
  /** Witness policy (parsed, or the policy file's text): k of n cosignatures required on the checkpoint. */
  witnessPolicy?: WitnessPolicy | string;
}

export type FleetKeyConfig = PinnedFleetConfig | OverTheAirFleetConfig;

/** What the client asks the gateway for; `knownTreeSize` lets it include a consistency proof. */
export interface BundleRequest {
  namespace: string;
  /** Size of the newest witness checkpoint the client has seen (0 if none). */
  knownTreeSize: number;
  /** Origin of that checkpoint's witness, if any. */
  witness?: string;
}

export type FetchBundle = (req: BundleRequest) => Promise<ValidationBundle | Uint8Array | string>;

function key32(k: KeyInput, what: string): Uint8Array {
  if (k instanceof Uint8Array) {
    if (k.length !== 32) throw new BkvError('USAGE', `${what} must be 32 bytes`);
    return k.slice();
  }
  return decodeBase64(k, what, 32);
}

async function loadPrevious(store: CheckpointStore, witnesses: readonly NoteVerifier[]): Promise<SignedCheckpoint[]> {
  const out: SignedCheckpoint[] = [];
  for (const w of witnesses) {
    const note = await store.get(checkpointKey(w.name));
    if (note === undefined) continue;
    // The store is local but still re-verified: a corrupted store must not weaken the checks.
    out.push(verifyCheckpoint(note, w));
  }
  return out;
}

export async function resolveFleetKeys(config: FleetKeyConfig, fetchBundle?: FetchBundle): Promise<ResolvedFleetKeys> {
  if (config.mode === 'pinned') {
    return {
      mode: 'pinned',
      namespace: config.namespace,
      epoch: config.epoch ?? 0,
      opaqueServerPublicKey: key32(config.keys.opaqueServerPublicKey, 'opaqueServerPublicKey'),
      encryptionPublicKey: key32(config.keys.encryptionPublicKey, 'encryptionPublicKey'),
      signingPublicKey: key32(config.keys.signingPublicKey, 'signingPublicKey'),
    };
  }
  if (config.mode !== 'over-the-air') throw new BkvError('USAGE', 'fleet key mode must be "pinned" or "over-the-air"');
  if (!fetchBundle) throw new BkvError('USAGE', 'over-the-air fleet keys need a function that fetches the validation bundle');
  if (config.witnesses.length === 0) throw new BkvError('USAGE', 'over-the-air fleet keys need at least one pinned witness key');
  const witnesses = config.witnesses.map((w) => parseVerifierKey(w));
  const previousAll = await loadPrevious(config.store, witnesses);
  const previous = previousAll.reduce<SignedCheckpoint | undefined>((a, c) => (!a || c.size > a.size ? c : a), undefined);
  const storedEpoch = await config.store.get(epochKey(config.namespace));
  const minEpoch = storedEpoch === undefined ? undefined : parseDecimal(storedEpoch, 'stored epoch');
  const bundle = await fetchBundle({
    namespace: config.namespace,
    knownTreeSize: previous?.size ?? 0,
    ...(previous ? { witness: previous.origin } : {}),
  });
  const now = config.now === null ? undefined : (config.now ?? Date.now)();
  const v = verifyValidationBundle(bundle, {
    witnesses,
    namespace: config.namespace,
    previousCheckpoints: previousAll,
    ...(minEpoch !== undefined ? { minEpoch } : {}),
    ...(now !== undefined ? { now } : {}),
    ...(config.witnessPolicy !== undefined
      ? { witnessPolicy: typeof config.witnessPolicy === 'string' ? parseWitnessPolicy(config.witnessPolicy) : config.witnessPolicy }
      : {}),
  });
  // Persist only what moves forward.
  const prevSame = previousAll.find((p) => p.origin === v.checkpoint.origin);
  if (!prevSame || v.checkpoint.size > prevSame.size) {
    await config.store.set(checkpointKey(v.checkpoint.origin), v.checkpoint.note);
  }
  if (minEpoch === undefined || v.epoch > minEpoch) await config.store.set(epochKey(config.namespace), String(v.epoch));
  return {
    mode: 'over-the-air',
    namespace: v.namespace,
    epoch: v.epoch,
    opaqueServerPublicKey: v.keys.opaqueServerPublicKey,
    encryptionPublicKey: v.keys.encryptionPublicKey,
    signingPublicKey: v.keys.signingPublicKey,
    artifact: v.artifact,
  };
}
