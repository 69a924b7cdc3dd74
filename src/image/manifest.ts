import { MediaType } from './media-types.js';
import { isIndexMediaType, isImageManifestMediaType } from './media-types.js';
import { imageIndexSchema, imageManifestSchema, type Descriptor, type ImageIndex, type ImageManifest } from './oci.schema.js';
import { compileValidator, parseJson } from './validate.js';

const validateManifest = compileValidator<ImageManifest>(imageManifestSchema, 'image manifest');
const validateIndex = compileValidator<ImageIndex>(imageIndexSchema, 'image index');

/** A manifest or index parsed from its stored bytes, with the descriptors it points at. */
export type ParsedManifest =
  | { kind: 'index'; index: ImageIndex; children: Descriptor[] }
  | { kind: 'image'; manifest: ImageManifest; children: Descriptor[] };

/**
 * Parses the bytes of a manifest of `mediaType`; `where` names it in errors.
 * Children are every descriptor it references (manifests of an index; config + layers of an image).
 */
export function parseManifest(bytes: Buffer, mediaType: string, where: string): ParsedManifest {
  const data = parseJson(bytes, where);
  if (isIndexMediaType(mediaType)) {
    const index = validateIndex(data, where);
    checkDeclaredMediaType(index.mediaType, mediaType, where);
    return { kind: 'index', index, children: index.manifests };
  }
  if (isImageManifestMediaType(mediaType)) {
    const manifest = validateManifest(data, where);
    checkDeclaredMediaType(manifest.mediaType, mediaType, where);
    return { kind: 'image', manifest, children: [manifest.config, ...manifest.layers] };
  }
  throw new Error(`${where}: unsupported manifest media type "${mediaType}"`);
}

/** The subject a manifest refers to (for the referrers API), if any. */
export function subjectOf(parsed: ParsedManifest): Descriptor | undefined {
  return parsed.kind === 'index' ? parsed.index.subject : parsed.manifest.subject;
}

// A manifest whose own mediaType field disagrees with its descriptor is ambiguous (image-spec
// manifest.md: "when used, this field MUST contain the media type"); refuse it.
function checkDeclaredMediaType(declared: string | undefined, expected: string, where: string): void {
  if (declared !== undefined && declared !== expected) {
    throw new Error(`${where}: manifest says mediaType "${declared}" but is referenced as "${expected}"`);
  }
}

/**
 * What a root of an index.json is to a user (issue: one tag names one thing): an `image` (an image
 * manifest with an image config, or an index of them), a `referrer` (anything with a `subject`:
 * an SBOM or signature attached by `oras attach` / `cosign attach`), or another `artifact` (an
 * `artifactType` or config type that is no image, such as a cosign `.sig` tag's manifest).
 */
export type RootKind = 'image' | 'referrer' | 'artifact';

const IMAGE_CONFIG_TYPES = new Set<string>([MediaType.ociConfig, MediaType.dockerConfig]);

export function rootKind(parsed: ParsedManifest): RootKind {
  if (subjectOf(parsed)) return 'referrer';
  const body = parsed.kind === 'index' ? parsed.index : parsed.manifest;
  if (body.artifactType !== undefined) return 'artifact';
  if (parsed.kind === 'image' && !IMAGE_CONFIG_TYPES.has(parsed.manifest.config.mediaType)) return 'artifact';
  return 'image';
}
