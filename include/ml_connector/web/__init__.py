"""The FastAPI app the Airflow plugin mounts at ``/ml-connector`` (Exact consent routes, status page)."""
