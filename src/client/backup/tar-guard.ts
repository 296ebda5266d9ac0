/**
 * What an archive may create, decided before anything is created: the one place that stops a
 * hostile archive from writing outside its output or through a link. Browser-safe, no I/O.
 *
 * Extraction goes into a new, empty directory that only the extractor writes to, so the entries
 * admitted so far are exactly what exists there. An entry is refused (BAD_ARCHIVE) when
 * - its path was already created (a duplicate), unless it is a directory entry for a directory
 *   that was only made as the parent of an earlier entry;
 * - one of its parents is not a directory: a symbolic link (`lnk -> /etc`, then `lnk/passwd`),
 *   a hard link or a file;
 * - it is a hard link whose target is not a regular file earlier in the same archive.
 * Symbolic links are created as they are stored, whatever their target: nothing is ever
 * created through one. Paths are already normalised by tar-reader.ts (relative, no `..`).
 */
import { BkvError } from '../../shared/errors.js';
import type { TarEntryType } from './tar-reader.js';

type Made = TarEntryType | 'parent';

export class ArchiveGuard {
  private readonly made = new Map<string, Made>();

  /**
   * Admits one entry, or throws BAD_ARCHIVE. Returns the parent directories that do not exist
   * yet, outermost first, which the caller creates before the entry.
   */
  admit(entry: { path: string; type: TarEntryType; linkpath: string }): string[] {
    const { path, type } = entry;
    const parts = path.split('/');
    const parents: string[] = [];
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      const kind = this.made.get(dir);
      if (kind === undefined) parents.push(dir);
      else if (kind !== 'directory' && kind !== 'parent') {
        throw refuse(`${JSON.stringify(path)} would be created through the ${describe(kind)} ${JSON.stringify(dir)}`, path);
      }
    }
    const existing = this.made.get(path);
    if (existing !== undefined && !(existing === 'parent' && type === 'directory')) {
      throw refuse(`${JSON.stringify(path)} appears twice (a ${describe(existing === 'parent' ? 'directory' : existing)}, then a ${describe(type)})`, path);
    }
    if (type === 'hardlink') {
      const target = this.made.get(entry.linkpath);
      if (target !== 'file' && target !== 'hardlink') {
        throw refuse(`hard link ${JSON.stringify(path)} points to ${JSON.stringify(entry.linkpath)}, which is not a file earlier in the archive`, path);
      }
    }
    for (const dir of parents) this.made.set(dir, 'parent');
    this.made.set(path, type);
    return parents;
  }
}

function describe(kind: TarEntryType): string {
  return kind === 'symlink' ? 'symbolic link' : kind === 'hardlink' ? 'hard link' : kind;
}

function refuse(what: string, path: string): BkvError {
  return new BkvError('BAD_ARCHIVE', `unsafe archive: ${what}`, { path });
}
