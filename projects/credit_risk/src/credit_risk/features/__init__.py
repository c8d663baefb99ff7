"""The customer feature views: their schema, and the same computation on pandas and Spark."""
