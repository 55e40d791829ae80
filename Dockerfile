# syntax=docker/dockerfile:1
# The sidewatch image: the release binary alone on distroless (glibc, CA
# certificates, no shell), running as the nonroot user 65532 that the Helm
# chart and `sidewatch inject` expect. Build:
#   docker build --build-arg SIDEWATCH_REVISION=$(git rev-parse --short=12 HEAD) -t sidewatch/sidewatch:0.1.0 .
# The binary is a profile-guided build (scripts/pgo-build.sh: trained on the
# proxy and the log path, a few minutes more than a plain build); with
# --build-arg PGO=false it is a plain `cargo build --release`.

FROM rust:1.85-bookworm AS build
ARG SIDEWATCH_REVISION=unknown
ARG PGO=true
ENV SIDEWATCH_REVISION=${SIDEWATCH_REVISION}
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY examples ./examples
COPY benches ./benches
COPY scripts ./scripts
RUN if [ "$PGO" = true ]; then \
      bin=$(scripts/pgo-build.sh | tail -n 1); \
    else \
      cargo build --release --locked --bin sidewatch && bin=target/release/sidewatch; \
    fi \
 && install -D "$bin" /out/sidewatch

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/sidewatch /usr/local/bin/sidewatch
USER 65532:65532
# admin (/metrics /healthz /readyz /status), proxy
EXPOSE 4790 4791
ENTRYPOINT ["/usr/local/bin/sidewatch"]
CMD ["run"]
