"""What projects' pure transforms share: the as-of rule and the published shape.

The transforms themselves are the projects' (kaizen.yaml `features.transforms`).
Importing this package never imports pyspark.
"""
