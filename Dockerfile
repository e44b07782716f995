# syntax=docker/dockerfile:1
# heapster-rs image: /heapster (collector) and /eventer (event exporter).
#   docker build -t ghcr.io/heapster-rs/heapster:0.1.0 .
#   docker run --rm ghcr.io/heapster-rs/heapster:0.1.0 --help

FROM rust:1-bookworm AS build
# Extra compiler flags, none by default (the binaries run on any x86-64). For a fleet whose CPUs
# all have POPCNT and SSE4.2 (x86-64-v2: Intel since 2008, AMD since 2011):
#   docker build --build-arg RUSTFLAGS="-C target-cpu=x86-64-v2" ...
# which makes a tick cheaper: POPCNT counts a metric set's value bits in one instruction
# (the saving is in BENCHMARKS.md).
ARG RUSTFLAGS=""
WORKDIR /src
COPY . .
# Cache mounts keep the registry and build artefacts between builds (BuildKit); the binaries
# are copied out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin heapster --bin eventer \
 && install -D -m 0755 target/release/heapster /out/heapster \
 && install -D -m 0755 target/release/eventer /out/eventer

# glibc, libgcc and CA certificates, no shell, user nonroot (65532).
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/heapster /heapster
COPY --from=build /out/eventer /eventer
USER 65532:65532
# 8082: Heapster API, /healthz, /metrics; 8443: metrics.k8s.io; 8084: eventer /healthz.
EXPOSE 8082 8443 8084
ENTRYPOINT ["/heapster"]
