#!/usr/bin/env node
// The `cartorio` entry point. Node.js 22.1+ keeps the code it compiles in a cache on disk
// (os.tmpdir()/node-compile-cache, or $NODE_COMPILE_CACHE), so the modules imported from here on
// start faster on the next run; an older Node.js, or an unwritable cache, just compiles as before.
import module from 'node:module';

module.enableCompileCache?.();
await import('./program.js');
