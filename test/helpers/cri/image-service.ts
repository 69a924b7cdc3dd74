import { credentials, loadPackageDefinition, status, type Client, type ServiceError } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { join } from 'node:path';
import { ROOT } from '../cli.js';

/** ImageStatus's answer for an image the runtime holds (runtime.v1 `Image`). */
export interface CriImage {
  id: string;
  repo_tags: string[];
  repo_digests: string[];
  size: string;
}

/** The calls a kubelet makes to pull an image, over a runtime's CRI socket. */
export interface CriImages {
  /** PullImage, then ImageStatus: what the runtime now holds under `ref`. */
  pull: (ref: string) => Promise<{ imageRef: string; image: CriImage }>;
  /** ImageStatus; undefined when the runtime holds no image under `ref`. */
  status: (ref: string) => Promise<CriImage | undefined>;
  close: () => void;
}

/** The proto is read from the source tree: tsc does not copy it into dist/. */
const PROTO = join(ROOT, 'test', 'helpers', 'cri', 'image-service.proto');

type Callback = (error: ServiceError | null, response: Record<string, unknown>) => void;
type Method = (request: object, options: { deadline: number }, callback: Callback) => void;

/**
 * A gRPC client of runtime.v1.ImageService on `socket` (a path), the service kubelets call. A gRPC
 * error is thrown as one line naming the method, the image and the status, e.g.
 * `PullImage docker.io/library/nope:1: gRPC UNKNOWN (2): failed to pull and unpack image …`.
 */
export function criImages(socket: string, timeoutMs = 300_000): CriImages {
  const definition = loadSync(PROTO, { keepCase: true, longs: String, enums: String, defaults: true });
  const grpcObject = loadPackageDefinition(definition) as unknown as { runtime: { v1: { ImageService: typeof Client } } };
  const client = new grpcObject.runtime.v1.ImageService(`unix://${socket}`, credentials.createInsecure());
  const call = (method: string, ref: string, request: object): Promise<Record<string, unknown>> => new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, Method>)[method];
    if (fn === undefined) throw new Error(`runtime.v1.ImageService has no method ${method}`);
    fn.call(client, request, { deadline: Date.now() + timeoutMs }, (error, response) => {
      if (error === null) resolve(response);
      else reject(new Error(`${method} ${ref}: gRPC ${status[error.code] ?? 'UNKNOWN'} (${error.code}): ${error.details || error.message}`));
    });
  });
  const imageStatus = async (ref: string): Promise<CriImage | undefined> => ((await call('ImageStatus', ref, { image: { image: ref } }))['image'] ?? undefined) as CriImage | undefined;
  return {
    status: imageStatus,
    async pull(ref) {
      const pulled = await call('PullImage', ref, { image: { image: ref } });
      const image = await imageStatus(ref);
      if (image === undefined) throw new Error(`PullImage ${ref} answered ${String(pulled['image_ref'])}, yet ImageStatus finds no image under ${ref}`);
      return { imageRef: String(pulled['image_ref']), image };
    },
    close: () => client.close(),
  };
}
