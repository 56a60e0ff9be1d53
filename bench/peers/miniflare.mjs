// scripts/bench --emulators: runs a Worker in workerd through Miniflare's
// Node API, without the inspector that `wrangler dev` always attaches (it
// collects console output through it), so the bench can show workerd's
// cost with and without it. Usage (from bench/run.py):
//   node miniflare.mjs PORT MODULE_DIR MAIN_MODULE [WASM_MODULE]
// with the Worker's variables as JSON in BENCH_MINIFLARE_BINDINGS.
// Binds 127.0.0.1 only. Stops on SIGTERM.
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(process.env.BENCH_WRANGLER_DIR + '/');
const { Miniflare } = require('miniflare');
const [port, dir, main, wasm] = process.argv.slice(2);
const modules = [{ type: 'ESModule', path: path.join(dir, main) }];
if (wasm) modules.push({ type: 'CompiledWasm', path: path.join(dir, wasm) });
const mf = new Miniflare({
  host: '127.0.0.1',
  port: Number(port),
  modules,
  modulesRoot: dir,
  compatibilityDate: '2026-04-26',
  kvNamespaces: ['GATEWAY_KV'],
  durableObjects: wasm ? { GATEWAY_QUOTA: { className: 'QuotaCounter', useSQLite: true } } : {},
  bindings: JSON.parse(process.env.BENCH_MINIFLARE_BINDINGS || '{}'),
});
await mf.ready;
console.log('ready');
process.on('SIGTERM', async () => {
  await mf.dispose();
  process.exit(0);
});
