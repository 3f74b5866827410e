"""After deployment: the logging gateway, the tamper-evident event log, live checks against the run's own
evaluation, and the stop switch (Art. 12, 14(4)(e), 19, 26(6), 72; docs/monitor.md)."""
