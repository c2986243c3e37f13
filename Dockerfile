# rocserv in a container: the Debian package built from this tree, installed on debian:12-slim.
#
#   docker build -t rocserv .
#   docker run -d --name rocserv --cap-add NET_ADMIN --device /dev/net/tun \
#       -p 443:443/tcp -p 443:443/udp -v /srv/rocserv:/etc/ocserv rocserv
#
# /srv/rocserv holds ocserv.conf, the certificate and key it names, and the password file
# (ocpasswd -c /etc/ocserv/ocpasswd USER, run with `docker exec -it rocserv ...`); see
# doc/packaging.md. Workers run as the `ocserv` user the package creates.

# Build stage: rustup (in the rust image) installs the toolchain rust-toolchain.toml pins.
FROM rust:1-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpam0g-dev dpkg-dev binutils \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY rust-toolchain.toml .
# rustup >= 1.28 installs the pinned toolchain on request only.
RUN rustup toolchain install
COPY . .
RUN dist/debian/build-deb.sh --profile release --out /out

# Run stage: the package and what it depends on, nothing else.
FROM debian:12-slim
COPY --from=build /out/ /tmp/deb/
RUN apt-get update \
    && apt-get install -y --no-install-recommends /tmp/deb/rocserv_*.deb iproute2 nftables \
    && rm -rf /var/lib/apt/lists/* /tmp/deb
VOLUME ["/etc/ocserv"]
EXPOSE 443/tcp 443/udp
# rocserv stays in the foreground; --log-stderr sends its log to `docker logs`. docker stop's
# SIGTERM ends workers and sec-mod within a bounded time.
ENTRYPOINT ["/usr/sbin/rocserv", "-f", "--log-stderr"]
CMD ["-c", "/etc/ocserv/ocserv.conf"]
