"""Pure feature transforms: frames in, frames out; no I/O, no settings, no global state.

`views` is the contract every engine meets (view names, columns, dtypes, the as-of instant);
`invoices` is the one definition of an invoice's state and late label as of an instant;
`features_pandas` and `features_spark` compute the same views on pandas and on Spark.
Importing this package never imports pyspark.
"""
