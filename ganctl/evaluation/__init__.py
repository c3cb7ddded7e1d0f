"""Scoring sets of samples: `ganctl eval` and the in-training evaluation stand on this."""
from ganctl.evaluation.scoring import (LOWER_IS_BETTER, auto_metrics, evaluate, headline,
                                       score_generator)
from ganctl.evaluation.sets import check_sample_set, is_point_set, load_image_set, load_labels

__all__ = ["LOWER_IS_BETTER", "auto_metrics", "evaluate", "headline", "score_generator",
           "check_sample_set", "is_point_set", "load_image_set", "load_labels"]
