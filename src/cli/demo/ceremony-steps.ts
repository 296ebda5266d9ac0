import { join } from 'node:path';
import { decodeBase64, encodeBase64 } from '../../shared/fleet-formats/encoding.js';
import { isBkvError } from '../../shared/errors.js';
import { encodeAttestation, parseAttestation } from '../../shared/attestation/format.js';
import { vendorInit } from '../../attestation/software-hsm.js';
import { auditDeployment, formatDeploymentAudit } from '../../ceremony/audit.js';
import { runCeremony, type CeremonyResult } from '../../ceremony/ceremony.js';
import { encodeEvidence, type DeploymentEvidence } from '../../shared/evidence/evidence.js';
import { publishDeployment } from '../../ceremony/publish.js';
import { buildVaultCore } from '../../attestation/reproducible-build.js';
import { codeMeasurement, freshCodeMeasurement } from '../../host/measurement.js';
import { WitnessClient } from '../../witness/client.js';
import { operatorKeyFromSeed, type OperatorKey } from '../../witness/keys.js';
import { startWitness, type RunningWitness } from '../../witness/server.js';
import { loadWitnessIdentity } from '../../witness/keys.js';
import { formatVerifierKey, parseNote } from '../../shared/fleet-formats/note.js';
import { parseCheckpointBody } from '../../client/fleet/checkpoint.js';
import { formatWitnessPolicy, parseWitnessPolicy, verifyCosignatureQuorum } from '../../client/fleet/policy.js';
import { freePorts } from '../../host/fleet/provision.js';
import { need, onCleanup, type DemoStep } from './steps.js';

const NAMESPACE = 'demo.fleet-deployment';


/** A fleet's deployment ceremony, its publication with evidence, and the deployment audit: before any user registers. */
export const ceremonySteps: DemoStep[] = [
  {
    name: 'A hardware vendor root, and the vault core built reproducibly ($ bkv hsm vendor-init, npm run build:vault)',
    async run(ctx) {
      const vendorDir = join(ctx.workDir, 'vendor');
      const vendor = await vendorInit(vendorDir, 'demo-hsm-vendor');
      ctx.say(`vendor root ${vendor.publicKey.slice(0, 16)}…: it certifies each device's attestation key (software HSM backend)`);
      const measurement = await freshCodeMeasurement().catch(() => codeMeasurement());
      ctx.say(`vault core bundled into one file, byte-identical on any machine; its SHA-256 is the code measurement:`);
      ctx.say(`  ${measurement}`);
      ctx.state.set('ceremonyVendorDir', vendorDir);
      ctx.state.set('ceremonyVendorKey', vendor.publicKey);
      ctx.state.set('ceremonyMeasurement', measurement);
    },
  },
  {
    name: 'Deployment ceremony: five members at five sites ($ bkv fleet deploy --members 5)',
    async run(ctx) {
      const ports = await freePorts(11);
      const r = await runCeremony({
        dir: join(ctx.workDir, 'fleet'),
        members: 5,
        sites: ['site-a', 'site-b', 'site-c', 'site-d', 'site-e'],
        ports: { raft: ports.slice(0, 5), api: ports.slice(5, 10), gateway: ports[10]! },
        namespace: NAMESPACE,
        vendorDir: need<string>(ctx, 'ceremonyVendorDir'),
        measurement: need<string>(ctx, 'ceremonyMeasurement'),
      });
      ctx.say('each member generated its X25519 + Ed25519 identity inside its core; its device attested the keys, the code and the site');
      ctx.say('member 1 checked every attestation, generated the fleet secrets inside its core, and sealed them to each attested X25519 key');
      ctx.say('members 2 to 5 opened their copy inside their cores; all five signed the fleet keys they derived themselves');
      ctx.say(`the transcript (${decodeBase64(r.evidence.transcript, 't').length} bytes, one hash per step) is signed by all five members`);
      ctx.say(`written: ${r.artifactPath.slice(ctx.workDir.length + 1)}, ${r.evidencePath.slice(ctx.workDir.length + 1)}, fleet.json, member-1..5/`);
      ctx.state.set('ceremony', r);
    },
  },
  {
    name: 'Publish at a witness that checks the evidence first',
    async run(ctx) {
      const r = need<CeremonyResult>(ctx, 'ceremony');
      const operator: OperatorKey = operatorKeyFromSeed(crypto.getRandomValues(new Uint8Array(32)));
      // Three independent witnesses cosign this log's checkpoints (C2SP tlog-witness); clients need 2 of 3.
      const witnessDir = join(ctx.workDir, 'ceremony-witness');
      const logKey = (await loadWitnessIdentity(witnessDir)).signer;
      const cosigners = await Promise.all(
        [1, 2, 3].map((i) => startWitness(join(ctx.workDir, `cosigner-${i}`), { addCosignLogs: [formatVerifierKey(logKey.name, logKey.publicKey)] })),
      );
      for (const c of cosigners) onCleanup(ctx, () => c.close());
      const witness: RunningWitness = await startWitness(witnessDir, {
        addOperatorKeys: [encodeBase64(operator.publicKey)],
        addAllowedVendors: [need<string>(ctx, 'ceremonyVendorKey')],
        addAllowedMeasurements: [r.measurement],
        addCosigners: cosigners.map((c) => ({ url: c.url, verifierKey: c.log.keyInfo().cosignerVerifierKey })),
      });
      onCleanup(ctx, () => witness.close());
      ctx.say(`witness on ${witness.url}: allows one vendor root and one measurement`);
      ctx.say(`three cosigning witnesses (bkv witness start --cosign-log …) on ${cosigners.map((c) => new URL(c.url).port).join(', ')}; the log submits each checkpoint to them (--cosigner <url> <key>)`);
      const policy = formatWitnessPolicy({
        logs: [formatVerifierKey(logKey.name, logKey.publicKey)],
        witnesses: cosigners.map((c, i) => ({ label: `witness-${i + 1}`, verifierKey: c.log.keyInfo().cosignerVerifierKey, url: c.url })),
        quorum: 2,
      });
      ctx.state.set('witnessPolicy', policy);
      // An operator who edits an attestation is refused.
      const forged: DeploymentEvidence = JSON.parse(JSON.stringify(r.evidence)) as DeploymentEvidence;
      const a = parseAttestation(decodeBase64(forged.attestations[1]!.attestation.body, 'a'));
      forged.attestations[1]!.attestation.body = encodeBase64(encodeAttestation({ ...a, site: 'site-a' }));
      try {
        await new WitnessClient(witness.url).submit(NAMESPACE, 1, r.artifact, operator, encodeEvidence(forged));
        throw new Error('the witness accepted forged evidence');
      } catch (e) {
        if (!isBkvError(e, 'VERIFICATION_FAILED')) throw e;
        ctx.say(`forged evidence (member 2 "moved" to site-a): HTTP ${String(e.details.status)} ${String(e.details.check)}`);
      }
      const rec = await publishDeployment({ witnessUrl: witness.url, namespace: NAMESPACE, artifact: r.artifact, evidence: encodeEvidence(r.evidence), operator, counterSign: r.counterSign });
      ctx.say(`genuine evidence: logged as epoch ${rec.epoch} (digest ${rec.digest.slice(0, 16)}…), counter-signed inside member 1's core`);
      const note = await new WitnessClient(witness.url).checkpoint();
      const parsedPolicy = parseWitnessPolicy(policy);
      const q = verifyCosignatureQuorum(note, parsedPolicy);
      const cp = parseCheckpointBody(parseNote(note).text);
      ctx.say(
        `checkpoint (size ${cp.size}) carries the log's signature and ${q.valid.length} cosignature/v1 lines; the 2-of-3 witness policy is met (${parsedPolicy.witnesses.filter((w) => q.valid.includes(w.verifier)).map((w) => w.label).join(', ')})`,
      );
      ctx.state.set('ceremonyWitness', witness);
      ctx.state.set('witnessUrl', witness.url);
      ctx.state.set('witnessKey', (await new WitnessClient(witness.url).keyInfo()).verifierKey);
      ctx.state.set('namespace', NAMESPACE);
    },
  },
  {
    name: 'Audit the deployment as an outsider would ($ bkv audit deployment evidence.json --witness … --witness-key … --vendor-root … --rebuild)',
    async run(ctx) {
      const r = need<CeremonyResult>(ctx, 'ceremony');
      const witness = need<RunningWitness>(ctx, 'ceremonyWitness');
      const evidence = encodeEvidence(r.evidence);
      const report = await auditDeployment(evidence, {
        witness: new WitnessClient(witness.url),
        witnessKey: need<string>(ctx, 'witnessKey'),
        vendorRoots: [decodeBase64(need<string>(ctx, 'ceremonyVendorKey'), 'vendor', 32)],
        rebuild: async () => (await buildVaultCore()).measurement,
        now: Date.now(),
      });
      for (const line of formatDeploymentAudit(report)) ctx.say(line);
      if (!report.ok) throw new Error('the deployment audit failed');
      ctx.say('no user has registered yet: the fleet was checkable before it held a single key');
    },
  },
];
