"""What ``minivq demo`` writes up: the table, metrics.json, report.md (:mod:`.tables`); the figures (:mod:`.figures`)."""
from .tables import (ablation_table, column_title, format_chance, jsonable, snake_key, table_row, write_metrics,
                     write_report)

__all__ = ["table_row", "column_title", "ablation_table", "format_chance", "snake_key", "jsonable",
           "write_metrics", "write_report"]
