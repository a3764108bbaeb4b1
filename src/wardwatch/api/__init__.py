"""The HTTP face: FastAPI app, dependencies, error mapping."""
