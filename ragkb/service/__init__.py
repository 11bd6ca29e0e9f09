"""The ragkb service (`ragkb serve`): FastAPI on uvicorn, owning one RAGKB_HOME for the UI, the
portal's code and the nightly job. Only this package imports FastAPI."""
