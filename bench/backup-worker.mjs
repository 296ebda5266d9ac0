// Child process for bench/backup.bench.ts: runs one backup create or restore through the same
// functions the CLI calls (file to file, node:crypto path), timing only the operation itself, and
// prints {"seconds": s, "maxRssKb": n} with the process's peak RSS.
import { readFileSync } from 'node:fs';
import { createBackupFile, restoreBackupFile } from '../dist/node/backup-files.js';
import { decodeRecoveryKey } from '../dist/client/keys/recovery-key.js';

const [mode, input, output, keyFile] = process.argv.slice(2);
const key = decodeRecoveryKey(readFileSync(keyFile, 'utf8'));
const t0 = performance.now();
if (mode === 'create') await createBackupFile({ input, output, key });
else await restoreBackupFile({ input, output, key });
const seconds = (performance.now() - t0) / 1000;
process.stdout.write(JSON.stringify({ seconds, maxRssKb: process.resourceUsage().maxRSS }) + '\n');
