"""The worked example: a furniture store's customer credit risk, as a Kaizen project.

Will a customer's next invoice be paid 30 or more days late? `simulate` draws the world,
`features` computes the three customer views (pandas and Spark), `invoices` is the one
definition of an invoice's late label, and `labels` yields the labelled invoices.
"""
