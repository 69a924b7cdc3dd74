import { Command } from 'commander';
import { isIndexMediaType } from '../image/media-types.js';
import type { ImageSource } from '../store/image-source.js';
import type { RepositorySnapshot } from '../store/snapshot.js';
import { parseManifest } from '../image/manifest.js';
import { action, examples, openStoreReader, storeOption } from './common.js';
import { humanBytes } from './lifecycle-options.js';

interface Row {
  repository: string;
  tag: string;
  digest: string;
  mediaType: string;
  /** Bytes a client pulls for this tag: manifests, configs and layers (every platform of an index). */
  size: number;
  /**
   * Bytes of blobs only this row's repository references (the same on every row of a repository):
   * what `cartorio rm NAME` and then `cartorio gc` would free.
   */
  repositoryOnlyBytes: number;
}

export function listCommand(): Command {
  return new Command('list')
    .alias('ls')
    .summary('list repositories, tags, digests and sizes')
    .addOption(storeOption())
    .option('--json', 'print JSON')
    .description('List every tag with its digest and the bytes a pull of it fetches. ONLY IN REPOSITORY (JSON: repositoryOnlyBytes) is what no other repository shares: what `cartorio rm NAME` then `cartorio gc` would free.')
    .addHelpText('after', examples(['cartorio list', 'cartorio list --store /srv/images --json | jq -r ".[].repository"', 'cartorio list --store s3://images/prod', 'cartorio list --json | jq -r "unique_by(.repository)[] | [.repository, .repositoryOnlyBytes] | @tsv"']))
    .action(action('list', async (flags: { store: string; json?: boolean }) => {
      const reader = await openStoreReader(flags.store);
      const rows: Row[] = [];
      const names = await reader.repositoryNames();
      const only = await onlyHeldBytes(reader, names);
      for (const name of names) {
        const snapshot = await reader.repository(name);
        if (!snapshot) continue;
        for (const tag of snapshot.tags) {
          const digest = snapshot.tagged.get(tag) ?? '';
          const manifest = await snapshot.manifest(digest).then((found) => found ?? Promise.reject(new Error('its manifest is missing'))).catch((error: unknown) => {
            // Listed tags are what a pull can get; a broken one is said, not dropped silently.
            process.stderr.write(`cartorio list: ${name}:${tag} (${digest}) is not served: ${(error as Error).message}; run \`cartorio verify\`\n`);
            return undefined;
          });
          if (!manifest) continue;
          rows.push({ repository: name, tag, digest, mediaType: manifest.descriptor.mediaType, size: await pullSize(snapshot, digest, new Set()), repositoryOnlyBytes: only.get(name) ?? 0 });
        }
      }
      if (flags.json) {
        process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
        return;
      }
      // The repository's own bytes once, on its first row.
      const table = [['REPOSITORY', 'TAG', 'DIGEST', 'SIZE', 'ONLY IN REPOSITORY'], ...rows.map((row, i) => [row.repository, row.tag, row.digest, humanBytes(row.size), rows[i - 1]?.repository === row.repository ? '' : humanBytes(row.repositoryOnlyBytes)])];
      const widths = table[0]?.map((_, i) => Math.max(...table.map((line) => (line[i] ?? '').length))) ?? [];
      process.stdout.write(table.map((line) => line.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n') + '\n');
    }));
}

/** Per repository, the bytes of blobs no other repository reaches. */
async function onlyHeldBytes(reader: ImageSource, names: readonly string[]): Promise<Map<string, number>> {
  const holders = new Map<string, number>();
  const reached = new Map<string, ReadonlyMap<string, number>>();
  for (const name of names) {
    const blobs = (await (await reader.repository(name))?.contents())?.blobs;
    if (!blobs) continue;
    reached.set(name, blobs);
    for (const digest of blobs.keys()) holders.set(digest, (holders.get(digest) ?? 0) + 1);
  }
  const only = new Map<string, number>();
  for (const [name, blobs] of reached) {
    let bytes = 0;
    for (const [digest, size] of blobs) if (holders.get(digest) === 1) bytes += size;
    only.set(name, bytes);
  }
  return only;
}

async function pullSize(snapshot: RepositorySnapshot, digest: string, counted: Set<string>): Promise<number> {
  const manifest = await snapshot.manifest(digest).catch(() => undefined);
  if (!manifest || counted.has(digest)) return 0;
  counted.add(digest);
  const { children } = parseManifest(manifest.bytes, manifest.descriptor.mediaType, digest);
  let total = manifest.bytes.length;
  for (const child of children) {
    if (isIndexMediaType(manifest.descriptor.mediaType)) total += await pullSize(snapshot, child.digest, counted);
    else if (!counted.has(child.digest)) {
      counted.add(child.digest);
      total += child.size;
    }
  }
  return total;
}

