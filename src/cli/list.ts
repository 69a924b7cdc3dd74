import { Command } from 'commander';
import { isIndexMediaType } from '../image/media-types.js';
import type { RepositorySnapshot } from '../store/snapshot.js';
import { parseManifest } from '../image/manifest.js';
import { action, examples, openStoreReader, storeOption } from './common.js';

interface Row {
  repository: string;
  tag: string;
  digest: string;
  mediaType: string;
  /** Bytes a client pulls for this tag: manifests, configs and layers (every platform of an index). */
  size: number;
}

export function listCommand(): Command {
  return new Command('list')
    .alias('ls')
    .summary('list repositories, tags, digests and sizes')
    .addOption(storeOption())
    .option('--json', 'print JSON')
    .addHelpText('after', examples(['cartorio list', 'cartorio list --store /srv/images --json | jq -r ".[].repository"', 'cartorio list --store s3://images/prod']))
    .action(action('list', async (flags: { store: string; json?: boolean }) => {
      const reader = await openStoreReader(flags.store);
      const rows: Row[] = [];
      for (const name of await reader.repositoryNames()) {
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
          rows.push({ repository: name, tag, digest, mediaType: manifest.descriptor.mediaType, size: await pullSize(snapshot, digest, new Set()) });
        }
      }
      if (flags.json) {
        process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
        return;
      }
      const table = [['REPOSITORY', 'TAG', 'DIGEST', 'SIZE'], ...rows.map((row) => [row.repository, row.tag, row.digest, human(row.size)])];
      const widths = table[0]?.map((_, i) => Math.max(...table.map((line) => (line[i] ?? '').length))) ?? [];
      process.stdout.write(table.map((line) => line.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n') + '\n');
    }));
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

function human(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
