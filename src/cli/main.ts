#!/usr/bin/env node
// The `cartorio` command. Node's compile cache goes on before the program's modules load, so a
// start after the first reuses their compiled code instead of parsing and compiling them again.
// `serve` binds its port even before that (early-port.ts): connections wait instead of being refused.
import { startCompileCache } from './compile-cache.js';

startCompileCache(process.env);
// Not in a cluster worker (it has an IPC channel): it listens where its primary says, later.
const early = process.argv[2] === 'serve' && process.channel === undefined ? await (await import('./early-port.js')).EarlyPort.bind(process.argv.slice(3), process.env) : undefined;
await (await import('./program.js')).run(early);
