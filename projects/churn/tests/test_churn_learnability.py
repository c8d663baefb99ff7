"""The world is worth modelling: features of a day predict its final labels (ROC AUC > 0.7)."""

from __future__ import annotations

import pandas as pd
from churn.clock import as_of
from churn.features.pandas_engine import compute_features
from churn.labels import no_event_within
from churn.params import ChurnParams
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

PARAMS = ChurnParams()
CATEGORIES = ["plan", "country", "device"]


def test_features_predict_final_labels(history) -> None:
    _, days, users, events = history
    cutoff = as_of(days[-1])
    labels = no_event_within({"events": events}, cutoff, PARAMS)
    labels = labels[labels["final_ts"] <= cutoff]
    rows = []
    for ds in days[:-7]:
        views = compute_features({"users": users, "events": events}, ds, PARAMS)
        day = views["user_profile"].merge(views["user_engagement"], on="user_id")
        rows.append(day.assign(event_timestamp=as_of(ds)))
    table = labels.merge(pd.concat(rows), on=["user_id", "event_timestamp"], validate="1:1")
    assert len(table) == len(labels)  # every labelled row has its features
    table[CATEGORIES] = table[CATEGORIES].astype("category")
    features = [c for c in table.columns if c not in {*labels.columns}]
    split = as_of(days[15])  # train on the first 16 days, test on the later final ones
    train, test = table[table["event_timestamp"] <= split], table[table["event_timestamp"] > split]
    model = HistGradientBoostingClassifier(
        categorical_features="from_dtype", max_iter=100, random_state=0
    ).fit(train[features], train["label"])
    auc = roc_auc_score(test["label"], model.predict_proba(test[features])[:, 1])
    assert auc > 0.7, auc
