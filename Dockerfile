# projd as a container: `projd run` with the projections in /app/projections.
#
#   docker build -t projd .
#   docker run --rm -e DATABASE_URL=postgres://user:pass@db:5432/app \
#     -v "$PWD/projections:/app/projections:ro" -p 9464:9464 projd
#
# The image holds the built package and its runtime dependencies only. Projections are
# loaded as they are (TypeScript too), so mounting or copying them in is all a deploy needs.

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
# `npm ci` builds dist/ through `prepare`; the embedded PostgreSQL (a dev dependency) is not
# wanted in the image, so its install script is skipped.
RUN npm ci --ignore-scripts && npm run build

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /src/dist ./dist
COPY bin ./bin
COPY migrations ./migrations
COPY projections ./projections
COPY deploy/projd.yaml ./projd.yaml
# The node image's unprivileged user; projd needs no write access to /app.
USER node
EXPOSE 9464
# /livez answers from the process loop alone, without querying PostgreSQL.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9464/livez').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "/app/bin/projd.js", "run", "-c", "/app/projd.yaml"]
