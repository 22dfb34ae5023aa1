# syntax=docker/dockerfile:1.7
# Lays out the Triton model repository in a volume: <model>/config.pbtxt from
# deploy/triton/production (mounted at /spec/production) and <model>/1/model.onnx from the ONNX
# cache built on the host by `lfr models build` (mounted at /onnx). No weights in the image.
FROM python:3.11.14-slim-bookworm
RUN pip install --no-cache-dir PyYAML==6.0.2 \
 && groupadd --system --gid 10001 lfr \
 && useradd --system --uid 10001 --gid lfr --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin lfr \
 && mkdir /models && chown 10001:10001 /models
# a new named volume mounted at /models takes this directory's ownership (uid 10001 can write)
COPY deploy/docker/models_init.py /opt/lfr/models_init.py
USER 10001:10001
ENTRYPOINT ["python", "/opt/lfr/models_init.py", "--spec", "/spec", "--onnx", "/onnx", "--out", "/models"]
