/**
 * Runs the bkv CLI from the TypeScript sources (node --import tsx), so tests can start real
 * witness processes without a build: `node --import tsx test/witness/bkv-from-source.ts witness start …`.
 */
import { main } from '../../src/cli/main.js';

process.exitCode = await main(process.argv);
