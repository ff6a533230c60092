"""Your own recordings as items of the turn lab and the latency lab: the format (lab/items/format.py,
lab/items/schema.json), its checker (`dsm-lab check`), imports from and exports to other label formats
(`dsm-lab import`), all with the core's dependencies only; the subtitle and TextGrid readers need the
[formats] extra, imported when used."""

from .check import Problem, check_folder, check_item
from .format import FORMAT, LABELS, item_paths, pause_label, schema_path, timed, write_item
from .read import read_item, read_meta

__all__ = ["FORMAT", "LABELS", "Problem", "check_folder", "check_item", "item_paths", "pause_label", "read_item",
           "read_meta", "schema_path", "timed", "write_item"]
