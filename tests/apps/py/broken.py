"""An app that cannot be imported: tests/e2e/test_python.c's boot failure."""
import this_module_does_not_exist  # noqa: F401

app = None
