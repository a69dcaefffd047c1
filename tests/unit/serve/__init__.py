"""`python -m api serve`'s processes: the API, and the child worker process that runs
the operations beside it (`api.worker_process`)."""
