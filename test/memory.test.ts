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
