// Child process for bench/backup.bench.ts: runs one backup create or restore through the same
// functions the CLI calls (file to file, node:crypto path), timing only the operation itself, and
// prints {"seconds": s, "maxRssKb": n} with the process's peak RSS. Like the CLI, the calling
// thread computes too (mainThreadWorks) unless the fifth argument is "threads-only": the library
// default, where only worker threads compute and the caller's event loop stays free. "node-aes":
// as the CLI, but AES-GCM through node:crypto instead of the in-place addon.
import { existsSync, readFileSync } from 'node:fs';
import { createBackupFile, restoreBackupFile } from '../dist/node/backup-files.js';
import { decodeRecoveryKey } from '../dist/client/keys/recovery-key.js';

/**
 * Peak RSS of this process image. Linux's getrusage maxrss also counts the image the parent
 * forked before exec (a benchmark holding 130 MB made every child look 130 MB big); VmHWM does not.
 */
function peakRssKb() {
  if (existsSync('/proc/self/status')) {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]);
  }
  return process.resourceUsage().maxRSS;
}

const [mode, input, output, keyFile, how] = process.argv.slice(2);
const key = decodeRecoveryKey(readFileSync(keyFile, 'utf8'));
const options = { input, output, key, mainThreadWorks: how !== 'threads-only', aes: how === 'node-aes' ? 'node' : 'auto' };
const t0 = performance.now();
if (mode === 'create') await createBackupFile(options);
else await restoreBackupFile(options);
const seconds = (performance.now() - t0) / 1000;
process.stdout.write(JSON.stringify({ seconds, maxRssKb: peakRssKb() }) + '\n');
