# The cartorio Concourse resource type, which is also a task image that can serve images:
#   /opt/resource/check, in, out     the resource (DESIGN §5)
#   cartorio                         the CLI on PATH (with `serve LAYOUT…` for a get's oci/)
#
# BASE is any Linux image with Node.js 24 (or 22.15+) as `node` on PATH and a /bin/sh, e.g. node:24-bookworm-slim.
# The build uses no network: run `npm ci` first (node_modules is part of the context). Classic builder:
#   npm ci && DOCKER_BUILDKIT=0 docker build --network none --build-arg BASE=node:24-bookworm-slim -t cartorio-resource .
#   DOCKER_BUILDKIT=0 docker build --network none --build-arg BASE=… --target tests .   # runs the tests below
ARG BASE=node:24-bookworm-slim

# ---- build: compile, then bundle check/in/out and the CLI into single files (esbuild) ----
# TYPE_ERRORS=warn builds a tree whose type errors are elsewhere (tsc still emits), as `npm run build` does.
FROM ${BASE} AS build
ARG TYPE_ERRORS=fail
WORKDIR /src
COPY . .
RUN node node_modules/typescript/bin/tsc -p tsconfig.json || [ "$TYPE_ERRORS" = warn ]
RUN node assets/build-bundle.mjs /src/dist/bundle

# ---- tests: the suites that need nothing but Node.js (the others drive skopeo, Distribution, dockerd) ----
FROM build AS tests
ARG TESTS="dist/test/resource-units.test.js"
RUN node --test ${TESTS}

# ---- the resource image: two bundles, the entry scripts, no node_modules ----
FROM ${BASE}
COPY --from=build /src/dist/bundle/ /opt/resource/lib/
COPY --from=build /src/assets/check /src/assets/in /src/assets/out /src/assets/cartorio /src/assets/run-resource.mjs /opt/resource/
# The entry scripts are ES modules; so is everything below /opt/resource.
COPY --from=build /src/dist/bundle/cartorio/package.json /opt/resource/package.json
# A server of 100 000 tags stays under 200 MB RSS: Node 24 would grow its young generation to 64 MB+
# (SERVER_NODE_FLAGS in src/resource/server-bundle.ts; the bundle_server launcher passes the same).
ENV NODE_OPTIONS=--max-semi-space-size=4
# Running it once also fills Node's compile cache (/root/.cache/cartorio/compile-cache, src/cli/compile-cache.ts):
# every later start, as root, compiles the CLI from it (serve listens ~20 ms sooner).
RUN ln -s /opt/resource/cartorio /usr/local/bin/cartorio && cartorio --version
CMD ["cartorio", "--help"]
