"""What ``minivq demo`` writes up: the table, metrics.json, report.md (:mod:`.tables`); the figures (:mod:`.figures`).

``from minivq import report`` gives the functions of :mod:`.tables`, as it
did when this package was one module (minivq/report.py, before 0.3); the
figures are ``from minivq.report import figures``.
"""
from .tables import (ablation_table, column_title, format_chance, jsonable, snake_key, table_row, write_metrics,
                     write_report)

__all__ = ["table_row", "column_title", "ablation_table", "format_chance", "snake_key", "jsonable",
           "write_metrics", "write_report"]
