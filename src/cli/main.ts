#!/usr/bin/env node
// The `cartorio` command. Node's compile cache goes on before the program's modules load, so a
// start after the first reuses their compiled code instead of parsing and compiling them again.
import { startCompileCache } from './compile-cache.js';

startCompileCache(process.env);
await import('./program.js');
