# The control plane's image: a static ringfence binary on distroless, run as
# an unprivileged user. Build from the repository's root:
#   docker build -t ringfence --build-arg VERSION=v1.4.0 .
# deploy/compose.yaml runs three replicas of it on PostgreSQL behind
# HAProxy (docs/operations.md, "Containers").

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
# Static (no cgo: the SQLite driver is pure Go), no paths of the build
# machine, the version in the binary.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X github.com/ringfence/ringfence/internal/version.version=${VERSION}" -o /out/ringfence ./cmd/ringfence
# Empty directories for the data and the keys volumes: a volume mounted
# there first takes their owner, the unprivileged user.
RUN mkdir -p /out/data /out/keys

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ringfence /usr/local/bin/ringfence
COPY --from=build --chown=65532:65532 /out/data /var/lib/ringfence
COPY --from=build --chown=65532:65532 /out/keys /keys
# distroless's nonroot user and group.
USER 65532:65532
WORKDIR /var/lib/ringfence
VOLUME ["/var/lib/ringfence"]
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/ringfence"]
CMD ["server", "--data", "/var/lib/ringfence", "--listen", ":8080", "--insecure-http", "--metrics-addr", ":9090"]
