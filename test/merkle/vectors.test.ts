import { describe, expect, it } from 'vitest';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { base64 } from '@scure/base';
import { vectorsDir, readVectorJson } from '../helpers/vectors.js';
import { verifyConsistency, verifyInclusion, MerkleProofError } from '../../src/shared/merkle/index.js';

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.json')) out.push(p);
  }
  return out;
}

const b = (s: string): Uint8Array => base64.decode(s);

interface InclusionVector {
  leafIdx: number;
  treeSize: number;
  root: string;
  leafHash: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}
interface ConsistencyVector {
  size1: number;
  size2: number;
  root1: string;
  root2: string;
  proof: string[] | null;
  desc: string;
  wantErr: boolean;
}

function outcome(f: () => void): 'ok' | 'error' {
  try {
    f();
    return 'ok';
  } catch (e) {
    expect(e).toBeInstanceOf(MerkleProofError);
    return 'error';
  }
}

const root = vectorsDir();
const inclusion = walk(join(root, 'merkle', 'inclusion')).map((p) => relative(root, p));
const consistency = walk(join(root, 'merkle', 'consistency')).map((p) => relative(root, p));

describe('shared Merkle vectors (transparency-dev/merkle)', () => {
  it('finds the vector sets', () => {
    expect(inclusion.length).toBeGreaterThan(50);
    expect(consistency.length).toBeGreaterThan(50);
  });

  it.each(inclusion)('inclusion %s', (file) => {
    const v = readVectorJson<InclusionVector>(file);
    const got = outcome(() =>
      verifyInclusion(v.leafIdx, v.treeSize, b(v.leafHash), (v.proof ?? []).map(b), b(v.root)),
    );
    expect(got, v.desc).toBe(v.wantErr ? 'error' : 'ok');
  });

  it.each(consistency)('consistency %s', (file) => {
    const v = readVectorJson<ConsistencyVector>(file);
    const got = outcome(() =>
      verifyConsistency(v.size1, v.size2, (v.proof ?? []).map(b), b(v.root1), b(v.root2)),
    );
    expect(got, v.desc).toBe(v.wantErr ? 'error' : 'ok');
  });
});
