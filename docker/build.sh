#!/usr/bin/env bash
# Build the Dataflow worker image (Beam's Python 3.11 SDK 2.77.0 + webtext) and push it.
#
#   docker/build.sh IMAGE          e.g. docker/build.sh us-central1-docker.pkg.dev/PROJECT/webtext/worker:0.1.0
#
# Then run the build with the image on every worker:
#   webtext build --dumps gs://BUCKET/dumps --out gs://BUCKET/webtext \
#     --runner DataflowRunner --project PROJECT --region us-central1 \
#     --temp_location gs://BUCKET/tmp --sdk_container_image IMAGE --sdk_location container
# (Without an image, `--setup_file ./setup.py` makes each worker pip-install this checkout
# at start-up instead: slower start, same code.)
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: docker/build.sh IMAGE   (a registry path you can push to)" >&2
  exit 2
fi
IMAGE="$1"
cd "$(dirname "$0")/.."
docker build -f docker/Dockerfile -t "$IMAGE" .
docker push "$IMAGE"
echo "pushed $IMAGE; pass --sdk_container_image $IMAGE --sdk_location container"
