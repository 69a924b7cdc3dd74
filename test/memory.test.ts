import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLI, run, tempDir } from './helpers/cli.js';

// Loading streams: a 300 MB input never makes the loader hold a layer in memory.
const BIG_MB = 300;
// Node.js 20 peaked at ~100 MB; Node.js 24 at ~150 MB (rootfs dir ~165 MB), and at the same for a
// 600 MB tar: a higher plateau (its V8 frees dead read buffers later), not a layer held in memory.
const MAX_PEAK_RSS_MB = 200;

/** Runs the CLI and samples VmHWM (peak resident set) from /proc until it exits. */
async function peakRss(args: string[]): Promise<{ code: number | null; peakMb: number; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let peakKb = 0;
  const sample = async (): Promise<void> => {
    const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '');
    const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
    peakKb = Math.max(peakKb, hwm);
  };
  const timer = setInterval(() => void sample(), 20);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearInterval(timer);
  return { code, peakMb: peakKb / 1024, stderr };
}

test(`loading ${BIG_MB} MB inputs keeps memory flat`, async (t) => {
  const dir = await tempDir(t);
  const rootfs = join(dir, 'rootfs');
  // incompressible content, made by real tools
  const made = await run('bash', ['-c', `mkdir -p ${rootfs}/data && head -c ${BIG_MB}M /dev/zero | openssl enc -aes-256-ctr -nosalt -pass pass:cartorio -pbkdf2 > ${rootfs}/data/blob.bin && tar -C ${rootfs} -cf ${dir}/rootfs.tar .`]);
  assert.equal(made.code, 0, made.stderr);

  const tarLoad = await peakRss(['load', '--store', join(dir, 'store'), join(dir, 'rootfs.tar'), '--name', 'big/tar']);
  assert.equal(tarLoad.code, 0, tarLoad.stderr);
  const dirLoad = await peakRss(['load', '--store', join(dir, 'store'), rootfs, '--name', 'big/dir', '--compression', 'none']);
  assert.equal(dirLoad.code, 0, dirLoad.stderr);

  // a docker-archive of the same image, written by skopeo from the store
  const archive = join(dir, 'big-docker.tar');
  const copied = await run('skopeo', ['copy', '-q', `oci:${join(dir, 'store', 'big', 'dir')}:latest`, `docker-archive:${archive}:big/archive:1`]);
  assert.equal(copied.code, 0, copied.stderr);
  const archiveLoad = await peakRss(['load', '--store', join(dir, 'store2'), archive]);
  assert.equal(archiveLoad.code, 0, archiveLoad.stderr);

  t.diagnostic(`peak RSS: rootfs tar ${tarLoad.peakMb.toFixed(0)} MB, rootfs dir ${dirLoad.peakMb.toFixed(0)} MB, docker-archive ${archiveLoad.peakMb.toFixed(0)} MB`);
  for (const [what, result] of [['rootfs tar', tarLoad], ['rootfs dir', dirLoad], ['docker-archive', archiveLoad]] as const) {
    assert.ok(result.peakMb > 10 && result.peakMb < MAX_PEAK_RSS_MB, `${what}: peak RSS ${result.peakMb.toFixed(0)} MB for a ${BIG_MB} MB input`);
  }
});

// Serving: the young generation stays near 8 MB of new space without a flag on the command line
// (Node.js 24 would grow it to 128 MB), and a semi-space size the user chose is left alone. The
// check runs after a collection has grown the space, so it may have grown once more: 16 MB at most.
// Mode 'late': a short churn with no cap, then the cap set (a start-up that grew the space first).
const CHURN = `
  const { getHeapSpaceStatistics } = await import('node:v8');
  const { capYoungGeneration } = await import(process.argv[1]);
  const newSpace = () => getHeapSpaceStatistics().find((space) => space.space_name === 'new_space').space_size;
  const mode = process.argv[2];
  const capped = mode === 'cap' ? capYoungGeneration([], undefined) : false;
  let keep = [];
  let largest = 0;
  for (let round = 0; round < (mode === 'late' ? 300 : 3000); round++) {
    // short-lived objects, a tenth of them kept a while: what requests in flight leave behind, a
    // turn of the event loop at a time
    for (let i = 0; i < 10000; i++) {
      const object = { i, list: [i] };
      if (i % 10 === 0) keep.push(object);
      if (keep.length > 100000) keep = [];
    }
    await new Promise((resolve) => setImmediate(resolve));
    largest = Math.max(largest, newSpace());
  }
  if (mode === 'late') capYoungGeneration([], undefined);
  console.log(JSON.stringify({ capped, largest, now: newSpace() }));`;

async function churn(mode: string): Promise<{ capped: boolean; largest: number; now: number }> {
  const module = new URL('../src/cli/young-generation.js', import.meta.url).href;
  const result = await run(process.execPath, ['--input-type=module', '-e', CHURN, module, mode]);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as { capped: boolean; largest: number; now: number };
}

test('a serving process keeps its young generation near 8 MB without a command-line flag', async (t) => {
  const free = await churn('free');
  const capped = await churn('cap');
  t.diagnostic(`largest new space: ${free.largest / 1048576} MB by default, ${capped.largest / 1048576} MB capped`);
  assert.equal(capped.capped, true);
  assert.ok(capped.largest <= 16 * 1048576, `new space grew to ${capped.largest} bytes`);
  assert.ok(free.largest > capped.largest, 'the churn grows the young generation of an uncapped process');
  const { capYoungGeneration } = await import('../src/cli/young-generation.js');
  assert.equal(capYoungGeneration(['--max-semi-space-size=2'], undefined), false);
  assert.equal(capYoungGeneration([], '--max-old-space-size=512 --max_semi_space_size=16'), false);
});

// A start-up that grew the space before the cap was set (a worker opening a large store did, to
// 16 MB) is shrunk back when the cap is set, not left at its size until the process goes idle.
test('setting the cap shrinks a young generation the start-up already grew past it', async (t) => {
  const { largest, now } = await churn('late');
  t.diagnostic(`new space: ${largest / 1048576} MB before the cap, ${now / 1048576} MB once set`);
  assert.ok(largest > 16 * 1048576, `the churn grew the new space to ${largest} bytes only`);
  assert.ok(now <= 8 * 1048576, `new space still ${now} bytes`);
});
