"""The build report shared by the face-video builders (`ffpp`, `celeb_df`).

Bad input never stops a build and is never silently dropped: every skipped
video, skipped frame and flagged frame is collected with its reason and
written as `build_report.json` into the dataset's version folder, beside the
number of frames each split asked for and got, and the totals are logged.

Beam workers cannot share a Python list with the driver (and their logs come
back mangled), so under Beam each entry becomes a `Metrics.counter` whose
namespace names the kind and whose name is the entry as JSON, and each
video's example count by label a counter named by split and label; the
driver reads them back from the pipeline result (`add_from_pipeline`).
"""

from __future__ import annotations

import collections
import json
import logging

from etils import epath

REPORT_FILENAME = "build_report.json"
KINDS = ("skipped_videos", "skipped_frames", "flagged_frames")

_log = logging.getLogger(__name__)


class BuildReport:
    """Skipped videos, skipped frames, flagged frames and example tallies of one build.

    Args:
        dataset: the builder's name, used for counter namespaces and the log.

    Example:

    ```python
    report = BuildReport("ffpp")
    report.add("skipped_videos", {"split": "train", "video": "real/000", "reason": "..."})
    report.tally("train", "fake", 270)
    report.write("/tmp/build_report.json", header={"dataset": "ffpp/c23"})
    ```
    """

    def __init__(self, dataset: str):
        self.dataset = dataset
        self.namespace = f"{dataset}_report/"
        self.tally_namespace = f"{dataset}_tally"
        self.entries = {kind: [] for kind in KINDS}
        # (split, label) -> examples written.
        self.tallies = collections.Counter()

    def add(self, kind, entry):
        if kind not in self.entries:
            raise ValueError(f"unknown report kind {kind!r}; expected one of {KINDS}")
        self.entries[kind].append(dict(entry))

    def tally(self, split: str, label: str, count: int):
        """Counts `count` more examples of `label` ("real"/"fake") in `split`."""
        self.tallies[(split, label)] += int(count)

    def metrics_reporter(self):
        """A picklable `report(kind, entry)` for Beam workers (see module doc)."""
        return _MetricsReporter(self.namespace)

    def metrics_tally(self):
        """A picklable `tally(split, label, count)` for Beam workers."""
        return _MetricsTally(self.tally_namespace)

    def add_from_pipeline(self, pipeline_result):
        """Collects the entries and tallies Beam workers reported as counters."""
        from apache_beam.metrics.metric import MetricsFilter

        counters = pipeline_result.metrics().query(MetricsFilter())["counters"]
        for counter in counters:
            namespace = counter.key.metric.namespace
            count = counter.committed if counter.committed is not None else counter.attempted
            if namespace == self.tally_namespace:
                split, label = json.loads(counter.key.metric.name)
                self.tally(split, label, int(count or 0))
                continue
            if not namespace.startswith(self.namespace):
                continue
            kind = namespace[len(self.namespace) :]
            entry = json.loads(counter.key.metric.name)
            for _ in range(int(count or 0)):
                self.add(kind, entry)

    def write(self, path, header):
        """Writes the report: `header` first, then the counts and the sorted entries."""

        def order(entry):
            return (entry.get("split", ""), entry.get("video", ""), entry.get("frame", -1))

        report = dict(header)
        report["counts"] = {kind: len(entries) for kind, entries in self.entries.items()}
        for kind, entries in self.entries.items():
            report[kind] = sorted(entries, key=order)
        epath.Path(path).write_text(json.dumps(report, indent=2))
        return report

    def log_summary(self, path, examples: int):
        """Logs the totals and where the report is (a warning if anything was left out)."""
        counts = {kind: len(entries) for kind, entries in self.entries.items()}
        message = (
            "%s: %d examples; %d videos skipped, %d frames skipped, %d frames flagged; "
            "details in %s"
        )
        args = (
            self.dataset,
            examples,
            counts["skipped_videos"],
            counts["skipped_frames"],
            counts["flagged_frames"],
            str(path),
        )
        (_log.warning if any(counts.values()) else _log.info)(message, *args)


class _MetricsReporter:
    """report(kind, entry) -> one Beam counter increment (runs in workers)."""

    def __init__(self, namespace: str):
        self.namespace = namespace

    def __call__(self, kind, entry):
        from apache_beam.metrics import Metrics

        Metrics.counter(self.namespace + kind, json.dumps(entry, sort_keys=True)).inc()


class _MetricsTally:
    """tally(split, label, count) -> a Beam counter per split and label (runs in workers)."""

    def __init__(self, namespace: str):
        self.namespace = namespace

    def __call__(self, split, label, count):
        from apache_beam.metrics import Metrics

        Metrics.counter(self.namespace, json.dumps([split, label])).inc(int(count))
