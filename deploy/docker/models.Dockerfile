# syntax=docker/dockerfile:1.7
# The `lfr/models` image for Kubernetes: the Triton model repository inputs (generated production
# configs + the ONNX files built by `lfr models build`), laid out into /models at pod start by the
# Triton Deployment's initContainer. Weights are never committed; they enter only through the named
# build context `onnx`:
#   docker buildx build -f deploy/docker/models.Dockerfile --build-context onnx=$HOME/.cache/lfr/models/onnx -t lfr/models:<tag> .
# An opt-in model (models.yaml opt_in: w600k_mbf, non-commercial research only) is copied only when its ONNX file
# is in that context: build an operational image from a cache without it (models_init.py skips it when absent).
FROM python:3.11.14-slim-bookworm
RUN pip install --no-cache-dir PyYAML==6.0.2 \
 && groupadd --system --gid 10001 lfr \
 && useradd --system --uid 10001 --gid lfr --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin lfr
COPY deploy/docker/models_init.py /opt/lfr/models_init.py
COPY deploy/triton/models.yaml /spec/models.yaml
COPY deploy/triton/production /spec/production
COPY --from=onnx *.onnx /onnx/
USER 10001:10001
ENTRYPOINT ["python", "/opt/lfr/models_init.py"]
CMD ["--spec", "/spec", "--onnx", "/onnx", "--out", "/models"]
