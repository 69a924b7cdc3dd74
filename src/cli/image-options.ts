import { Command, InvalidArgumentError, Option } from 'commander';
import type { ImageSettings } from '../image/config.js';
import { parsePlatform, type Platform } from '../image/platform.js';
import { FORMATS, type FormatName, type LoadOptions } from '../formats/types.js';
import { collect } from './common.js';

/** Options shared by `load` and `convert`: naming, format, and config for rootfs inputs. */
export interface ImageFlags {
  name?: string;
  tag?: string[];
  format?: FormatName;
  env?: string[];
  entrypoint?: string[];
  cmd?: string[];
  user?: string;
  workdir?: string;
  label?: string[];
  platform?: Platform;
  compression?: 'none' | 'gzip' | 'zstd' | `gzip:${number}`;
}

export function addImageOptions(command: Command): Command {
  return command
    .option('-n, --name <repo>', 'repository name for every image of the input (overrides names it carries)')
    .option('-t, --tag <tag>', 'tag (repeatable; overrides tags the input carries)', collect)
    .addOption(new Option('-f, --format <format>', 'input format (default: detected)').choices(FORMATS))
    .option('-e, --env <KEY=VALUE>', 'environment variable for rootfs images (repeatable)', collectEnv)
    .option('--entrypoint <cmd>', 'entrypoint: a JSON array, or one executable path', parseCommand)
    .option('--cmd <cmd>', 'default command: a JSON array, or one executable path', parseCommand)
    .option('--user <user>', 'user the image runs as (name, uid, or uid:gid)')
    .option('--workdir <dir>', 'working directory')
    .option('--label <KEY=VALUE>', 'image label (repeatable)', collectEnv)
    .option('--platform <os/arch[/variant]>', 'platform of images built from a rootfs (default: this machine)', parsePlatformOption)
    .addOption(new Option('--compression <kind>', 'layer compression for directories packed into a layer: none, gzip, gzip:LEVEL (1-9; gzip is gzip:6), or zstd (Node.js 22.15+)').argParser(parseCompression).default('gzip'));
}

/** Turns parsed flags into loader options; only flags that were given override the input. */
export function loadOptionsFrom(flags: ImageFlags): LoadOptions {
  const settings: ImageSettings = {
    ...(flags.env && { env: flags.env }),
    ...(flags.entrypoint && { entrypoint: flags.entrypoint }),
    ...(flags.cmd && { cmd: flags.cmd }),
    ...(flags.user !== undefined && { user: flags.user }),
    ...(flags.workdir !== undefined && { workdir: flags.workdir }),
    ...(flags.label && { labels: Object.fromEntries(flags.label.map((entry) => splitPair(entry))) }),
  };
  return {
    ...(flags.format && { format: flags.format }),
    ...(flags.name !== undefined && { name: flags.name }),
    ...(flags.tag && { tags: flags.tag }),
    ...(flags.platform && { platform: flags.platform }),
    ...(flags.compression && compressionOptions(flags.compression)),
    settings,
  };
}

function parseCompression(value: string): NonNullable<ImageFlags['compression']> {
  if (value === 'none' || value === 'gzip' || value === 'zstd') return value;
  const level = /^gzip:([1-9])$/.exec(value)?.[1];
  if (level === undefined) throw new InvalidArgumentError('expected none, gzip, gzip:LEVEL with LEVEL 1 to 9 (e.g. gzip:9), or zstd');
  return `gzip:${Number(level)}`;
}

function compressionOptions(flag: NonNullable<ImageFlags['compression']>): Pick<LoadOptions, 'compression' | 'gzipLevel'> {
  if (flag === 'none' || flag === 'gzip' || flag === 'zstd') return { compression: flag };
  return { compression: 'gzip', gzipLevel: Number(flag.slice('gzip:'.length)) };
}

function collectEnv(value: string, previous: string[] | undefined): string[] {
  if (!/^[^=]+=/.test(value)) throw new InvalidArgumentError('expected KEY=VALUE');
  return collect(value, previous);
}

function splitPair(entry: string): [string, string] {
  const at = entry.indexOf('=');
  return [entry.slice(0, at), entry.slice(at + 1)];
}

function parseCommand(value: string): string[] {
  if (!value.trimStart().startsWith('[')) return [value];
  try {
    const parsed: unknown = JSON.parse(value);
    if (Array.isArray(parsed) && parsed.every((item) => typeof item === 'string')) return parsed as string[];
  } catch {
    // fall through to the message below
  }
  throw new InvalidArgumentError('expected a JSON array of strings, e.g. \'["/bin/sh","-c","echo hi"]\'');
}

function parsePlatformOption(value: string): Platform {
  const platform = parsePlatform(value);
  if (!platform) throw new InvalidArgumentError('expected os/arch or os/arch/variant, e.g. linux/arm64');
  return platform;
}
