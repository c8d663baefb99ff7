"""Churn: a subscription app's users and events, and whether a user goes quiet for a week.

The second worked example of a Kaizen project (see docs/projects.md). Everything here is
the project's own: the platform only reaches it through the hooks `kaizen.yaml` names.
"""
