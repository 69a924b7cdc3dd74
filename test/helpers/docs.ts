import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ROOT } from './cli.js';

/** The Markdown files a reader of the repository meets: README.md, SECURITY.md, docs/, the examples' README. */
export async function markdownFiles(): Promise<string[]> {
  const docs = (await readdir(join(ROOT, 'docs'))).filter((name) => name.endsWith('.md')).map((name) => join('docs', name));
  return ['README.md', 'SECURITY.md', 'pipeline-examples/README.md', 'deploy/kubernetes/node-config/README.md', ...docs.sort()];
}

/** The text of `file` with fenced code blocks and inline code blanked (links inside them are examples). */
function prose(text: string): string {
  return text.replace(/^```[\s\S]*?^```/gm, (block) => block.replace(/[^\n]/g, ' ')).replace(/`[^`\n]*`/g, (code) => ' '.repeat(code.length));
}

/** Every link target of a Markdown text: `[text](target)` and `<img src="target">`, outside code. */
export function linkTargets(text: string): string[] {
  const plain = prose(text);
  const links = [...plain.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((match) => match[1] ?? '');
  const images = [...plain.matchAll(/<img\s[^>]*src="([^"]+)"/g)].map((match) => match[1] ?? '');
  return [...links, ...images];
}

/**
 * The anchors GitHub gives the headings of a Markdown text: lower case, punctuation dropped, each
 * space a hyphen; a repeated heading gets -1, -2, ….
 */
export function headingAnchors(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  const withoutFences = text.replace(/^```[\s\S]*?^```/gm, '');
  for (const match of withoutFences.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const slug = (match[1] ?? '').toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const count = seen.get(slug) ?? 0;
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
    seen.set(slug, count + 1);
  }
  return anchors;
}

/** A fenced shell block that follows an HTML comment `<!-- docs-test: KIND -->` in a Markdown file. */
export interface TestedBlock {
  file: string;
  kind: string;
  line: number;
  script: string;
}

export async function testedBlocks(): Promise<TestedBlock[]> {
  const blocks: TestedBlock[] = [];
  for (const file of await markdownFiles()) {
    const text = await readFile(join(ROOT, file), 'utf8');
    for (const match of text.matchAll(/<!-- docs-test: ([a-z-]+) -->\n```sh\n([\s\S]*?)^```/gm)) {
      blocks.push({ file, kind: match[1] ?? '', line: text.slice(0, match.index).split('\n').length, script: match[2] ?? '' });
    }
  }
  return blocks;
}
