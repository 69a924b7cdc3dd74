/**
 * The Node.js lines cartorio is built and tested on: the maintained LTS lines, newest first
 * (package.json `engines` says the same; a test checks). 22 from 22.15, the first 22 with zstd.
 */
export const SUPPORTED_NODE = [
  { major: 24, minor: 0, label: '24' },
  { major: 22, minor: 15, label: '22.15+' },
] as const;

/** The line `--version` adds after the package version: the runtime in use and whether it is supported. */
export function runtimeLine(version: string): string {
  const supported = SUPPORTED_NODE.map((line) => line.label).join(' or ');
  return isSupported(version) ? `Node.js ${version} (supported: Node.js ${supported})` : `Node.js ${version}: not supported, use Node.js ${supported}`;
}

/** Whether `version` (process.version, e.g. v24.22.3) is on a supported line. */
export function isSupported(version: string): boolean {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number);
  return SUPPORTED_NODE.some((line) => major === line.major && minor >= line.minor);
}
