import { chmod, copyFile, mkdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ROOT } from './cli.js';
import { must, type Docker } from './clients.js';

/** The Node.js line the resource image ships (the Dockerfile's default BASE is node:24-bookworm-slim). */
export const IMAGE_NODE_MAJOR = 24;

/**
 * A Node.js 24 binary of this machine: the one running the tests when it is 24 (as on CI),
 * else the one .ci/node-runtime.sh keeps in its cache (installed from the npm registry the first time).
 */
export async function imageNode(): Promise<string> {
  if (process.versions.node.split('.')[0] === String(IMAGE_NODE_MAJOR)) return process.execPath;
  const bin = (await must('bash', [join(ROOT, '.ci', 'node-runtime.sh'), String(IMAGE_NODE_MAJOR)])).stdout.trim();
  return join(bin, 'node');
}

/**
 * Imports a base image for the Dockerfile's `ARG BASE`, made from this machine: a Node.js 24
 * binary (`imageNode`) at /usr/local/bin/node, the shared libraries `ldd` lists for it at their
 * paths, and a static busybox for /bin/sh, /usr/bin/env and the usual commands.
 */
export async function importNodeBase(docker: Pick<Docker, 'docker'>, dir: string, tag: string): Promise<void> {
  const node = await imageNode();
  const rootfs = join(dir, 'node-base');
  await busyboxRootfs(rootfs);
  await mkdir(join(rootfs, 'usr', 'local', 'bin'), { recursive: true });
  await copyFile(node, join(rootfs, 'usr', 'local', 'bin', 'node'));
  await chmod(join(rootfs, 'usr', 'local', 'bin', 'node'), 0o755);
  const ldd = await must('ldd', [node]);
  for (const [, path] of ldd.stdout.matchAll(/(?:=>\s*)?(\/\S+)\s+\(0x/g)) {
    if (path === undefined) continue;
    await mkdir(dirname(join(rootfs, path)), { recursive: true });
    await copyFile(path, join(rootfs, path)); // follows the link: the soname path holds the library
  }
  await importRootfs(docker, rootfs, join(dir, 'node-base.tar'), tag);
}

/** Imports an image holding nothing but a static busybox: no libc, no Node.js. */
export async function importBusyboxOnly(docker: Pick<Docker, 'docker'>, dir: string, tag: string): Promise<void> {
  const rootfs = join(dir, 'busybox-only');
  await busyboxRootfs(rootfs);
  await importRootfs(docker, rootfs, join(dir, 'busybox-only.tar'), tag);
}

async function busyboxRootfs(rootfs: string): Promise<void> {
  for (const sub of ['bin', 'usr/bin', 'etc', 'tmp', 'root']) await mkdir(join(rootfs, sub), { recursive: true });
  await chmod(join(rootfs, 'tmp'), 0o1777);
  await copyFile('/bin/busybox', join(rootfs, 'bin', 'busybox'));
  await chmod(join(rootfs, 'bin', 'busybox'), 0o755);
  const applets = (await must('/bin/busybox', ['--list'])).stdout.split('\n').filter((name) => /^[a-z0-9_.[-]+$/.test(name) && name !== 'busybox');
  for (const applet of applets) await symlink('busybox', join(rootfs, 'bin', applet));
  await symlink('/bin/busybox', join(rootfs, 'usr', 'bin', 'env'));
  await writeFile(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  await writeFile(join(rootfs, 'etc', 'group'), 'root:x:0:\n');
}

async function importRootfs(docker: Pick<Docker, 'docker'>, rootfs: string, tarball: string, tag: string): Promise<void> {
  await must('tar', ['--numeric-owner', '-C', rootfs, '-cf', tarball, '.']);
  const imported = await docker.docker(['import', tarball, tag]);
  if (imported.code !== 0) throw new Error(`docker import ${tag}: ${imported.stderr}`);
}
