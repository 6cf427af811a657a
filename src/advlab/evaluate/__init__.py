"""Evaluation: per-example rows (``rows``), their statistics (``stats``) and display tables (``tables``).

Every table and curve in the book is aggregated from the rows these functions return.
"""
from .rows import check_adversarial, clean_table, evaluate_attack, minimal_norms, sweep, transfer_matrix, worst_case
from .stats import accuracy, clopper_pearson, median_interval, norm_summary, query_summary, success_by_queries
from .tables import accuracy_table, display_table, format_accuracy, format_columns, interval

__all__ = ["accuracy", "accuracy_table", "check_adversarial", "clean_table", "clopper_pearson", "display_table",
           "evaluate_attack", "format_accuracy", "format_columns", "interval", "median_interval", "minimal_norms",
           "norm_summary", "query_summary", "success_by_queries", "sweep", "transfer_matrix", "worst_case"]
