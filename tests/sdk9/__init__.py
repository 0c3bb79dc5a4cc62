"""The SDK 9.x backend's tests (a package, so its conftest never shadows tests/conftest.py)."""
