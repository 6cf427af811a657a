"""Evaluation: per-example rows (``rows``), their statistics (``stats``) and display tables (``tables``).

Every table and curve in the book is aggregated from the rows these functions return.
"""
from .adaptive import (GradientProbe, MaskingProbe, adaptive_worst_case, cascade, cascade_description, ensemble,
                       escalation, overstatement, probe, robust_evaluation)
from .audit import CHECKS as AUDIT_CHECKS
from .audit import gradient_masking_audit
from .rows import (adversarial_inputs, changed_pixels, check_adversarial, clean_table, evaluate_attack,
                   fgsm_eps_for_rate, minimal_norms, noise_injection, rho_adv_rows, sweep,
                   transfer_matrix, transfer_rows, worst_case)
from .stats import (accuracy, accuracy_by_queries, clopper_pearson, median_interval, nearest, noise_summary,
                    norm_summary, query_grid, query_summary, rho_adv_summary, success_by_queries, transfer_summary,
                    transfer_table)
from .tables import (accuracy_table, certified_curve, display_table, format_accuracy, format_columns, interval,
                     interval_cells, rate, robustness_summary, value_interval)

__all__ = ["accuracy", "accuracy_by_queries", "accuracy_table", "adaptive_worst_case", "adversarial_inputs",
           "AUDIT_CHECKS", "cascade", "cascade_description", "certified_curve", "changed_pixels",
           "check_adversarial", "clean_table", "clopper_pearson", "display_table", "ensemble", "escalation",
           "evaluate_attack", "fgsm_eps_for_rate", "format_accuracy", "format_columns", "gradient_masking_audit",
           "GradientProbe", "interval", "interval_cells", "MaskingProbe", "median_interval", "minimal_norms",
           "nearest", "noise_injection", "noise_summary", "norm_summary", "overstatement", "probe", "query_grid",
           "query_summary", "rate", "rho_adv_rows", "rho_adv_summary", "robust_evaluation", "robustness_summary",
           "success_by_queries", "sweep", "transfer_matrix", "transfer_rows", "transfer_summary", "transfer_table",
           "value_interval", "worst_case"]
