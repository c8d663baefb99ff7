"""`make kaizen-eval`: the KaizenML loop scored on a simulated half year.

A world of `scoreboard.days` days with the shock on `scoreboard.shock_day` and a few bad-data
days runs through the real stages in the order the DAGs run them, one day after the other
(`loop`); an oracle retrained every day from hindsight labels is the yardstick (`oracle`);
`board` turns the journal, the ledger and the prediction log into the scoreboard.
"""
