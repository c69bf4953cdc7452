"""The weight part of the monitor: per-gate norms, update ratios, non-finite counts, histograms
and the weight heatmap image, for every monitored layer, at every logged epoch."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from rnn_monitor.logdir import images
from rnn_monitor.model.anatomy import RNNLayerInfo
from rnn_monitor.record import EpochRecord, NonFinite
from rnn_monitor.stats.weights import gate_statistics
from rnn_monitor.logdir.writer import SummaryWriter


class WeightMonitor:
    """Keeps the previous snapshot per layer (for update ratios) and logs one epoch at a time."""

    def __init__(
        self,
        infos: Sequence[RNNLayerInfo],
        writer: SummaryWriter,
        histograms: bool = True,
        weight_images: bool = True,
    ) -> None:
        self.infos = list(infos)
        self.writer = writer
        self.histograms = histograms
        self.weight_images = weight_images
        self._previous: dict[str, dict] = {}

    def snapshot(self) -> dict[str, dict[str, np.ndarray]]:
        """Every monitored layer's weights as numpy, by layer name and role (the only part
        that reads TensorFlow variables; `log_epoch` can then run on another thread)."""
        return {info.name: info.weight_arrays() for info in self.infos}

    def log_epoch(self, epoch: int, record: EpochRecord, snapshot: Optional[dict] = None) -> None:
        """Statistics, histograms and images of one logged epoch, from `snapshot` (taken now
        when not given)."""
        if snapshot is None:
            snapshot = self.snapshot()
        for info in self.infos:
            arrays = snapshot[info.name]
            blocks = info.gate_blocks(arrays)
            stats = gate_statistics(blocks, self._previous.get(info.name))
            for name, value in stats.items():
                record.set_scalar(info.name, name, value)
            for (role, gate), block in blocks.items():
                count = int(stats[f"{role}/{gate}/nonfinite"])
                if count:
                    record.nonfinite.append(NonFinite(info.name, role, gate, count))
                if self.histograms:
                    self.writer.histogram(f"{info.name}/{role}/{gate}", block, epoch)
            self._previous[info.name] = {key: block.copy() for key, block in blocks.items()}
            if self.weight_images:
                self._write_image(info, arrays, epoch)

    def _write_image(self, info: RNNLayerInfo, arrays: dict[str, np.ndarray], epoch: int) -> None:
        order = [r for r in ("kernel", "recurrent_kernel", "bias") if r in arrays]
        if not order:
            order = list(arrays)
        mats = [arrays[r] for r in order]
        heatmap = images.weight_heatmap(mats, gate_width=info.units if info.gates else None)
        factor = heatmap.pool
        pooled = (f" Each pixel is the largest-magnitude weight of a {factor}x{factor} block "
                  "(the layer has too many weights for one pixel each)." if factor > 1 else "")
        description = (
            f"Bands top to bottom: {', '.join(order)}; columns by gate "
            f"({', '.join(info.gate_names)}), dark lines between gates. "
            "Red positive, blue negative, white 0 (each band its own scale); magenta = NaN/Inf."
            + pooled
        )
        self.writer.image(f"{info.name}/weights", heatmap.rgb, epoch, description=description)
