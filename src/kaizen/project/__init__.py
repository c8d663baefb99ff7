"""Projects: the declaration a dataset is onboarded with, and the hooks it names.

A project is a folder with a `kaizen.yaml` (see docs/projects.md). `locate` finds the
selected one, `declaration` validates its file, `hooks` imports what it names, and
`project.Project` is what the stages read.
"""
