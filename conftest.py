"""Root conftest of the suite.

The plugin itself is registered through the pytest11 entry point
(pytest_codeeval.plugin); this file only makes the project's own tests able
to use pytester.
"""

pytest_plugins = ["pytester"]
