# regfsck as a container image, to run beside registry:2 on its storage volume (read-only):
#
#   docker build -t regfsck .
#   docker run --rm -v registry-data:/var/lib/registry:ro regfsck check /var/lib/registry
#
# More (state, metrics, du, gc): README.md, "Operations".

# Build: Debian's Rust image, the release binary only.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY bench/genstore.rs ./bench/genstore.rs
RUN cargo build --release --locked --bin regfsck

# Run: a small Debian (the same glibc as the builder), a non-root user.
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/regfsck --create-home regfsck
COPY --from=build /src/target/release/regfsck /usr/bin/regfsck
# --reverify-after keeps its state file here by default (a volume keeps it between runs).
ENV XDG_STATE_HOME=/var/lib/regfsck
VOLUME /var/lib/regfsck
USER regfsck
ENTRYPOINT ["/usr/bin/regfsck"]
CMD ["check", "/var/lib/registry"]
