"""Evaluation: per-example rows (``rows``), their statistics (``stats``) and display tables (``tables``).

Every table and curve in the book is aggregated from the rows these functions return.
"""
from .adaptive import (GradientProbe, MaskingProbe, adaptive_worst_case, cascade, ensemble, escalation,
                       overstatement, probe, robust_evaluation)
from .audit import CHECKS as AUDIT_CHECKS
from .audit import gradient_masking_audit
from .rows import (adversarial_inputs, changed_pixels, check_adversarial, clean_table, evaluate_attack,
                   fgsm_eps_for_rate, minimal_norms, noise_injection, rho_adv_rows, sweep,
                   transfer_matrix, transfer_rows, worst_case)
from .stats import (accuracy, accuracy_by_queries, clopper_pearson, median_interval, nearest, noise_summary,
                    norm_summary, query_grid, query_summary, rho_adv_summary, success_by_queries, transfer_summary,
                    transfer_table)
from .tables import accuracy_table, display_table, format_accuracy, format_columns, interval, value_interval

__all__ = ["AUDIT_CHECKS", "GradientProbe", "MaskingProbe", "accuracy", "adaptive_worst_case", "cascade",
           "escalation", "overstatement", "probe",
           "accuracy_by_queries", "accuracy_table", "adversarial_inputs", "changed_pixels",
           "check_adversarial", "clean_table", "clopper_pearson", "display_table", "ensemble", "evaluate_attack",
           "fgsm_eps_for_rate", "format_accuracy", "format_columns", "gradient_masking_audit", "interval",
           "median_interval", "minimal_norms", "nearest", "noise_injection", "noise_summary", "norm_summary",
           "query_grid", "query_summary", "rho_adv_rows", "rho_adv_summary", "robust_evaluation", "success_by_queries",
           "sweep", "transfer_matrix", "transfer_rows", "transfer_summary", "transfer_table", "value_interval",
           "worst_case"]
