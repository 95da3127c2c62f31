"""Non-transfer baselines: raw pixels and TF-IDF, so every leaderboard shows whether a
pretrained representation helps at all."""
