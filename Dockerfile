# acaload: multi-stage build, small runtime image, non-root, plans and schemas included.
FROM rust:slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
RUN cargo build --profile dist --locked && strip target/dist/acaload

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /work acaload
COPY --from=build /src/target/dist/acaload /usr/local/bin/acaload
COPY plans /work/plans
COPY schemas /work/schemas
WORKDIR /work
USER acaload
ENTRYPOINT ["acaload"]
CMD ["run", "plans/mediator.yaml"]
