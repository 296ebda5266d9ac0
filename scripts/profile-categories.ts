/**
 * The categories a CPU sample is put in by the stack it was taken in, shared by the V8 profile
 * summary (scripts/cpuprofile-summary.ts) and the Linux perf summary (scripts/perf-summary.ts): a
 * frame's source location (a project file or a package that is a concern of its own) decides;
 * primitives and generic helpers pass their time to their caller; Node internals name the category
 * only when no frame decides.
 */
/** Categories decided by a frame's location (path inside the project, or package), first match wins. */
export const DECIDING: Array<[string, RegExp]> = [
  ['OPAQUE', /@serenity-kit\/opaque|^wasm:/],
  ['HPKE and channel', /@hpke\/|\/shared\/protocol\//],
  ['consensus MACs', /\/trusted\/consensus\/auth\./],
  ['consensus state sealing', /\/trusted\/consensus\/sealed-state\./],
  ['consensus serialisation', /\/trusted\/consensus\/(codec|messages)\./],
  ['consensus logic', /\/trusted\/consensus\//],
  ['record sealing', /\/trusted\/records\/record-keys\./],
  ['records: batcher, state, codec', /\/trusted\/records\//],
  ['record tree (Merkle)', /\/shared\/record-tree\//],
  ['SQLite', /better-sqlite3/],
  ['record store host', /\/host\/record-store\//],
  ['persist (log, fdatasync)', /\/host\/fleet\/member-storage\./],
  ['peer transport', /\/host\/fleet\/peer-transport\./],
  ['gateway relay', /\/host\/fleet\/gateway-relay\./],
  ['vault core', /\/trusted\/core\//],
  ['HTTP', /\/fastify\/|find-my-way|light-my-request|\/@fastify\/|\/avvio\/|deps\/undici|\/host\/gateway\/|node:_http_/],
  ['metrics', /prom-client/],
  ['logging', /\/pino|sonic-boom/],
  ['start-up', /\/commander\/|node:internal\/modules\/|node:internal\/bootstrap\/|cjs-module-lexer|\/cli\//],
  ['member host', /\/host\//],
];
/** Frames that never decide (primitives, generic helpers): their time goes to the caller. */
export const PASS_THROUGH = /@noble\/|\/host\/fleet\/native-crypto\.|\/shared\/bytes\.|\/node\/native-/;
/** Categories of Node internals, used only when no frame of the stack decides. */
export const INTERNAL: Array<[string, RegExp]> = [
  ['crypto (unattributed)', /node:internal\/crypto|node:crypto/],
  ['sockets and streams', /node:net|node:internal\/streams|stream_base_commons|node:internal\/net|node:dns/],
  ['fs', /node:fs|node:internal\/fs/],
  ['event loop (timers, ticks, events)', /node:internal\/timers|task_queues|node:events|node:internal\/async_hooks|node:timers/],
];
