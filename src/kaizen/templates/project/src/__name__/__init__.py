"""__name__: accounts and their events, and whether an active account goes a week without one.

Scaffolded by `kaizen init` (see docs/projects.md). Everything here is the project's own:
the platform only reaches it through the hooks `kaizen.yaml` names. Replace the generator
with real drops, the features and the label with your own, and keep `kaizen check` green.
"""
