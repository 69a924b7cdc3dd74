import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServedImages } from '../../store/image-source.js';

type Pages = typeof import('./pages.js');

export interface CatalogOptions {
  images: ServedImages;
  /** Believe X-Forwarded-Host/-Proto for the pull commands' address (behind a reverse proxy). */
  trustProxy?: boolean;
}

/**
 * The read-only catalog for people (DESIGN §4b): `/`, `/r/NAME` and the assets under `/-/`.
 * The pages' code is imported on the first page request, not when the server starts: `serve`
 * start-up is measured, and registry clients never ask for a page.
 */
export function registerCatalog(app: FastifyInstance, options: CatalogOptions): void {
  const context = { images: options.images, trustProxy: options.trustProxy === true };
  let pages: Promise<Pages> | undefined;
  const load = (): Promise<Pages> => (pages ??= import('./pages.js'));
  const route = (url: string, handle: (pages: Pages, request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>): void => {
    app.route({ method: ['GET', 'HEAD'], url, handler: async (request, reply) => handle(await load(), request, reply) });
  };
  route('/', (pages, request, reply) => pages.home(context, request, reply));
  route('/r/*', (pages, request, reply) => pages.repository(context, request, reply));
  route('/-/*', (pages, request, reply) => pages.asset(request, reply));
}
