"""The show log and what is read from it: records, folding, the day's report, redaction, crash stacks."""
