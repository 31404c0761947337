"""Background jobs: every Celery task, one module each, and the one lease they all hold.

- :mod:`.names`       every task's name (callers send tasks by name, never by import)
- :mod:`.lease`       claim / renew / finish / expire: one set of Lua scripts keyed by the job's record
- :mod:`.training`    train a model record
- :mod:`.evaluation`  evaluate a scheduled run's challenger against the champion
- :mod:`.analysis`    queue, cap and cache the analysis queue's jobs (comparisons, reports)
- :mod:`.comparison`, :mod:`.drift`, :mod:`.performance`  the analysis jobs themselves
- :mod:`.recovery`    notice lapsed leases and send their jobs again

This package imports nothing at import time: the registry imports :mod:`.lease` alone.
"""
