export * from './hash.js';
export * from './proof.js';
export * from './tree.js';
export * from './tiles.js';
