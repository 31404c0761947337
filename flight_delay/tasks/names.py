"""Every task's name, in one place. Callers send tasks by name (``celery.send_task``), so the
sending app's own Celery (its broker, its queue) carries them and no caller imports a task."""

TRAIN = "flight_delay.train_model"
START_RUN = "flight_delay.start_schedule_run"
EVALUATE_RUN = "flight_delay.evaluate_schedule_run"
DRIFT = "flight_delay.drift"
PERFORMANCE = "flight_delay.performance"
COMPARISON = "flight_delay.compare"

#: reports over caller-grown data and comparisons: the analysis queue's tasks
ANALYSIS = (DRIFT, PERFORMANCE, COMPARISON)

#: the modules that define them (a Celery app imports these to know its tasks)
MODULES = (
    "flight_delay.tasks.training",
    "flight_delay.tasks.run_start",
    "flight_delay.tasks.evaluation",
    "flight_delay.tasks.comparison",
    "flight_delay.tasks.drift",
    "flight_delay.tasks.performance",
)
