# syntax=docker/dockerfile:1
# Build stage: native better-sqlite3 needs a compiler; the TypeScript build needs dev dependencies.
FROM node:20-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts && npm rebuild better-sqlite3
COPY tsconfig.json tsconfig.build.json ./
COPY proto ./proto
COPY src ./src
COPY clients/typescript/src ./clients/typescript/src
COPY dashboard ./dashboard
RUN npm run build && npm prune --omit=dev

# Runtime stage: only the compiled broker, production dependencies and the .proto files
# (reflection serves them to grpcurl).
# The image listens on all interfaces, so it refuses to start without authentication: mount an
# auth file (and a certificate) and set SLUICE_AUTH_FILE, SLUICE_TLS_CERT, SLUICE_TLS_KEY
# (README "Docker" and "Security"), or set SLUICE_INSECURE=true for a network you trust.
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    SLUICE_DATA_FILE=/data/sluice.db \
    SLUICE_GRPC_ADDRESS=0.0.0.0:50051 \
    SLUICE_HTTP_ADDRESS=0.0.0.0:50052
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/proto ./proto
COPY package.json ./
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 50051 50052
# Over HTTPS when TLS is on (the certificate names the public host, not 127.0.0.1: not verified here).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "require(process.env.SLUICE_TLS_CERT?'https':'http').get({host:'127.0.0.1',port:50052,path:'/healthz',rejectUnauthorized:false},r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))"
# SIGTERM from `docker stop` starts the graceful drain; give it --time longer than the grace period.
STOPSIGNAL SIGTERM
# The same node flags as `npm start` (package.json): a young generation of 2 x 4 MB instead of
# V8's 2 x 16 MB, and an old generation allowed to grow 10% past what survived a full GC instead
# of up to 4x, so it does not fill with garbage under load. No throughput lost; RSS with 1M jobs
# queued under 100 MB (docs/performance.md, "Memory bounds").
ENTRYPOINT ["node", "--max-semi-space-size=4", "--heap-growing-percent=10", "dist/src/cli.js"]
CMD ["serve"]
