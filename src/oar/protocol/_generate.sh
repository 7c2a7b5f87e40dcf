#!/usr/bin/env bash
# Regenerate the gRPC stubs from grpc_service.proto (needs the dev extra: grpcio-tools).
#
#   bash src/oar/protocol/_generate.sh
#
# The generated files are committed, so serving needs only grpcio and protobuf at run time.
# They are rewritten to build their messages in a private descriptor pool: Triton's client
# registers the same "inference.*" names in protobuf's default pool, and both must load in one process.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$root/src"
python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. oar/protocol/grpc_service.proto
sed -i 's/^DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile(/POOL = _descriptor_pool.DescriptorPool()\nDESCRIPTOR = POOL.AddSerializedFile(/' \
  oar/protocol/grpc_service_pb2.py
grep -q '^POOL = _descriptor_pool.DescriptorPool()' oar/protocol/grpc_service_pb2.py
