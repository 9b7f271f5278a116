"""Runtime: configuration, clock, mailboxes, supervised workers and the composition root."""
