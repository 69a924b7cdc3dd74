/** An image platform as the OCI image spec writes it. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

// Node's process.arch → GOARCH, the names image configs use.
const GOARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64', mips: 'mips', mipsel: 'mipsle' };

/** The platform of this machine (Linux images: os is always linux). */
export function hostPlatform(): Platform {
  const architecture = GOARCH[process.arch] ?? process.arch;
  return architecture === 'arm' ? { os: 'linux', architecture, variant: 'v7' } : { os: 'linux', architecture };
}

/** Parses `os/arch[/variant]`; undefined when malformed. */
export function parsePlatform(value: string): Platform | undefined {
  const parts = value.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((part) => !/^[a-z0-9._-]+$/.test(part))) return undefined;
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}
