"""Monitoring: is the champion still right about the world it serves?

One module per question, each a pure-ish function over frames read from the lake:

* `window`      the current window: the project's requests of the last days with the features the
                model saw (served, from the prediction log) or would have seen (offline PIT);
* `reference`   the champion's training reference: its frozen holdout, logged with the version;
* `drift`       data drift per input and prediction drift (PSI + KS / chi-squared, evidently);
* `business`    the positive rate from delayed labels;
* `quality`     live ROC AUC / Brier per model version on delayed labels;
* `skew`        logged (online) features vs an offline recomputation for the same request;
* `freshness`   the newest published day per feature view vs its SLO;
* `history`     the per-day metrics kept in the lake, for trends;
* `alerts`      breaches, alerted once per episode, to the log and a webhook;
* `trigger`     the guarded retrain request;
* `report`      one self-contained HTML page with the plots.

`kaizen.stages.monitor` wires them together.
"""
