#!/usr/bin/env node
// Writes docs/commands.md from the CLI's own `--help`, so the reference cannot drift from the code.
//
//   node scripts/commands-doc.mjs            write docs/commands.md (after `npm run build`)
//   node scripts/commands-doc.mjs --check    exit 1 when docs/commands.md differs from what it would write
//   node scripts/commands-doc.mjs --stdout   print what it would write
//
// The commands are the ones `cartorio --help` lists, in its order. Help is taken from a pipe, so
// commander wraps it at 80 columns whatever the terminal, and without the CARTORIO_* variables, so
// the defaults shown are the built-in ones.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = `${root}dist/src/cli/main.js`;
const target = `${root}docs/commands.md`;

const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('CARTORIO_')));
const help = (args) => execFileSync(process.execPath, [cli, ...args, '--help'], { env, encoding: 'utf8', cwd: root });

/** The command names in the "Commands:" section of `cartorio --help`, but `help`. */
export function commandNames(text) {
  const section = text.split(/^Commands:\n/m)[1] ?? '';
  return [...section.matchAll(/^ {2}([a-z][a-z-]*)\b/gm)].map((match) => match[1]).filter((name) => name !== 'help');
}

export function render() {
  const top = help([]);
  const names = commandNames(top);
  if (names.length === 0) throw new Error('commands-doc: `cartorio --help` lists no commands');
  const block = (text) => ['```text', text.trimEnd(), '```'].join('\n');
  return [
    '# Command reference',
    '',
    '<!-- Written by `npm run docs` (scripts/commands-doc.mjs) from the CLI\'s own --help: do not edit by hand. -->',
    '',
    'Every command\'s `--help`, as the CLI prints it. The store is `--store DIR`, else',
    '`$CARTORIO_STORE`, else `./cartorio-store`. Exit codes: `0` success, `1` the work failed (bad',
    'input, problems found), `2` the command line was wrong. Errors are one line on stderr,',
    '`cartorio <command>: <input>: <problem>`, sometimes followed by a `hint:` line',
    '([troubleshooting.md](troubleshooting.md)).',
    '',
    '## cartorio',
    '',
    block(top),
    ...names.flatMap((name) => ['', `## cartorio ${name}`, '', block(help([name]))]),
    '',
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = render();
  const mode = process.argv[2];
  if (mode === '--stdout') {
    process.stdout.write(text);
  } else if (mode === '--check') {
    let current = '';
    try { current = readFileSync(target, 'utf8'); } catch { /* missing: stale */ }
    if (current !== text) {
      process.stderr.write('docs/commands.md is stale: run `npm run docs`\n');
      process.exitCode = 1;
    }
  } else if (mode === undefined) {
    writeFileSync(target, text);
  } else {
    process.stderr.write('usage: node scripts/commands-doc.mjs [--check | --stdout]\n');
    process.exitCode = 2;
  }
}
