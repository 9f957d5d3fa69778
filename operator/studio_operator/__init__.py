"""studio-operator: Studios on Kubernetes (the operator and the kubectl plugin)."""

__version__ = "0.1.0"  # = pyproject version (tests/unit/test_install_generated.py)
