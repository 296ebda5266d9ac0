import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isBkvError } from '../../shared/errors.js';
import { generateBackupKey } from '../../client/keys/backup-key.js';
import { decodeRecoveryKey, encodeRecoveryKey } from '../../client/keys/recovery-key.js';
import { createBackupFile, restoreBackupFile } from '../../node/backup-files.js';
import { inPlaceGcm } from '../../node/native-aes-gcm.js';
import { directorySize } from '../../node/dir-size.js';
import { writeSampleChats } from './sample-chats.js';
import { need, type DemoStep } from './steps.js';

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of (await readdir(join(dir, prefix), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const rel = join(prefix, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(dir, rel)));
    else out.push(rel);
  }
  return out;
}

/** The backup part of the demo: sample data, key, backup, restore, compare, tamper check. */
export const backupSteps: DemoStep[] = [
  {
    name: 'Generate a sample chat history',
    async run(ctx) {
      const dir = join(ctx.workDir, 'chat-history');
      await writeSampleChats(dir);
      const files = await listFiles(dir);
      ctx.say(`Wrote ${files.length} files (${((await directorySize(dir)) / 1024).toFixed(0)} KB): ${files.join(', ')}`);
      ctx.state.set('sampleDir', dir);
    },
  },
  {
    name: 'Draw a backup key and show it as a recovery key',
    async run(ctx) {
      const key = generateBackupKey();
      const recoveryKey = encodeRecoveryKey(key);
      ctx.say('A random 256-bit key K from the CSPRNG, shown as 64 characters in 16 groups:');
      ctx.say(`  ${recoveryKey}`);
      ctx.state.set('key', key);
      ctx.state.set('recoveryKey', recoveryKey);
    },
  },
  {
    name: 'Encrypt the chat history into a backup',
    async run(ctx) {
      const backup = join(ctx.workDir, 'chat-history.bkv');
      await createBackupFile({ input: need(ctx, 'sampleDir'), output: backup, key: need(ctx, 'key'), chunkSize: 64 * 1024 });
      const size = (await readFile(backup)).length;
      ctx.say(`Archived the directory as tar and sealed it in 64 KiB AES-256-GCM chunks: ${backup} (${(size / 1024).toFixed(0)} KB)`);
      const aes = inPlaceGcm();
      ctx.say(
        aes.available
          ? 'AES-256-GCM ran in place through the OpenSSL inside Node (native addon, checked against node:crypto first)'
          : `AES-256-GCM ran through node:crypto (in-place addon unavailable: ${aes.reason})`,
      );
      ctx.state.set('backupPath', backup);
    },
  },
  {
    name: 'Restore from the recovery key as the user would type it',
    async run(ctx) {
      const typed = need<string>(ctx, 'recoveryKey').toLowerCase().replace(/-/g, ' ');
      ctx.say(`Typed in lower case with spaces: ${typed.slice(0, 24)}...`);
      const restored = join(ctx.workDir, 'restored');
      await restoreBackupFile({ input: need(ctx, 'backupPath'), output: restored, key: decodeRecoveryKey(typed) });
      ctx.say(`Every chunk authenticated; restored into ${restored}`);
      ctx.state.set('restoredDir', restored);
    },
  },
  {
    name: 'Check the restored history is identical',
    async run(ctx) {
      const a = need<string>(ctx, 'sampleDir');
      const b = need<string>(ctx, 'restoredDir');
      const fa = await listFiles(a);
      const fb = await listFiles(b);
      if (fa.join('\n') !== fb.join('\n')) throw new Error('restored file list differs from the original');
      for (const f of fa) {
        if (!(await readFile(join(a, f))).equals(await readFile(join(b, f)))) throw new Error(`restored ${f} differs`);
      }
      ctx.say(`All ${fa.length} files match byte for byte.`);
    },
  },
  {
    name: 'Show that a flipped bit is detected',
    async run(ctx) {
      const bytes = await readFile(need<string>(ctx, 'backupPath'));
      bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
      const bad = join(ctx.workDir, 'tampered.bkv');
      await writeFile(bad, bytes);
      try {
        await restoreBackupFile({ input: bad, output: join(ctx.workDir, 'never'), key: need(ctx, 'key') });
        throw new Error('a tampered backup was accepted');
      } catch (err) {
        if (!isBkvError(err, 'TAMPERED')) throw err;
        ctx.say(`Refused with ${err.code}: ${err.message}; no output was written.`);
      }
    },
  },
];
