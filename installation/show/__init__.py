"""The show's day: lifecycle (opening hours, reload, watchdog, shutdown), the schedule, heap trimming."""
