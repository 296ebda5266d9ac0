import { readdir } from 'node:fs/promises';
import { resolve } from 'node:path';

/**
 * How node-tar reads files while packing: 256 KiB at a time, one file at a time. Its defaults
 * (16 MiB reads, four files at once, each reading ahead) held up to 64 MiB in flight: a 1 GiB
 * directory backup peaked at ~260 MB of RSS. With 1 MiB reads, 82–107 MB (each read is a fresh
 * buffer, and their garbage varied with collection timing); with 256 KiB, 80–81 MB, for about a
 * fifth more time (BENCHMARKS.md).
 */
const READ_BYTES = 256 * 1024;
const JOBS = 1;

/**
 * Directories travel as tar archives (POSIX ustar/pax), streamed both ways: packed here by
 * node-tar, extracted by tar-extract.ts. Entries are stored relative to the directory, with
 * portable headers (no owner names, uids, mtimes of the packing machine beyond what tar needs).
 */
export async function* packDirectory(dir: string, skip: (absolutePath: string) => boolean = () => false): AsyncGenerator<Uint8Array> {
  const entries = (await readdir(dir)).filter((e) => !skip(resolve(dir, e))).sort();
  if (entries.length === 0) return; // an empty directory is an empty archive payload
  const { create } = await import('tar'); // loaded only for directories
  const filter = (path: string) => !skip(resolve(dir, path));
  const pack = create({ cwd: dir, portable: true, strict: true, filter, maxReadSize: READ_BYTES, jobs: JOBS }, entries);
  for await (const chunk of pack as AsyncIterable<Uint8Array>) yield chunk;
}
