"""Side effects of incident workflows, run by the worker."""
