import { parentPort } from 'node:worker_threads';
import { runChunkJob, type ChunkJob } from './chunk-job.js';

/**
 * Entry of a worker thread of the parallel file path (src/node/worker-pool.ts): waits for one
 * job, runs chunks of it, posts its failure or null, and exits.
 */
parentPort!.once('message', (job: ChunkJob) => {
  parentPort!.postMessage({ failure: runChunkJob(job) });
  parentPort!.close();
});
