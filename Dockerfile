# sse-gateway: build in the Rust image, run in a small Debian image as a non-root user.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The load tool is a workspace member: cargo needs its manifest even to build the gateway alone.
COPY bench ./bench
RUN cargo build --release --locked --bin sse-gateway

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/sse-gateway /usr/local/bin/sse-gateway
USER 65532:65532
ENV SSE_GATEWAY_BIND=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s \
  CMD curl -fsS http://127.0.0.1:8080/healthz >/dev/null || exit 1
ENTRYPOINT ["/usr/local/bin/sse-gateway"]
