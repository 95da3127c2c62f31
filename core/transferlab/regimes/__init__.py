"""Fine-tuning regimes beyond one task and one head: ``multi-task`` (one shared backbone, a
head per task, losses summed with weights) and ``continual`` (a stream of experiences, with
the accuracy matrix and forgetting measured). Cells name them with ``Cell.regime``; the
strategies of the continual regime are plugins (:class:`ContinualStrategy`)."""

from transferlab.regimes.metrics import ContinualScores, continual_scores
from transferlab.regimes.spec import REGIMES, RegimeSpec, parse_regime, split_by_classes
from transferlab.regimes.strategy import ContinualStrategy, Experience, StreamState

__all__ = ["REGIMES", "ContinualScores", "ContinualStrategy", "Experience", "RegimeSpec",
           "StreamState", "continual_scores", "parse_regime", "split_by_classes"]
