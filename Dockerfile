# The gateway as a container: the Lambda adapter's binary in native server
# mode (no AWS_LAMBDA_RUNTIME_API, so it serves HTTP on GATEWAY_LISTEN).
# For ECS/Fargate, Cloud Run, Kubernetes — when Lambda's limits are in the
# way. TLS to upstreams is rustls with bundled roots: no OpenSSL in the
# image. Not built on the development machines (no registry access for
# base images there); see README "Native server mode".
#
#   docker build -t ai-gateway .
#   docker run -p 9100:9100 -v $PWD/config:/config \
#     -e GATEWAY_CONFIG_PATH=/config/gateway.yaml ai-gateway

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p gateway-aws-lambda --bin gateway

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/gateway /gateway
ENV GATEWAY_LISTEN=0.0.0.0:9100
EXPOSE 9100
USER nonroot
# The binary is PID 1 and drains on SIGTERM (30 s at most).
ENTRYPOINT ["/gateway"]
