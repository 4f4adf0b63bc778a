"""A codeeval run does not show deprecation notices raised inside its
dependencies (torch, vLLM, ...); it shows every warning the user must see,
and leaves runs without codeeval cases alone (pytester runs)."""

from __future__ import annotations

import warnings

import pytest

from pytest_codeeval.warning_filters import dependency_filter_lines

# A warning is attributed to the module whose code calls warnings.warn (the
# __name__ of that frame's globals): code run under a dependency's module name
# raises it as that dependency's internals do, e.g. torch/jit/_script.py:365.
NOISE = '''
import warnings

def warn_as(module, category, text):
    code = compile(f"import warnings\\nwarnings.warn({text!r}, {category})", module.replace(".", "/") + ".py", "exec")
    exec(code, {"__name__": module})

def make_noise():
    warn_as("torch.jit._script", "DeprecationWarning", "torch-internal deprecation")
    warn_as("vllm.model_executor", "FutureWarning", "vllm-internal future change")
    warn_as("transformers.utils", "PendingDeprecationWarning", "transformers-internal pending")
    warn_as("torch.cuda", "UserWarning", "torch user warning")
    warn_as("torchy_user_code", "DeprecationWarning", "a user module named like torch")
    warnings.warn("the user's own deprecation", DeprecationWarning)
'''
DROPPED = ["torch-internal deprecation", "vllm-internal future change", "transformers-internal pending"]
KEPT = ["torch user warning", "a user module named like torch", "the user's own deprecation"]


@pytest.fixture
def noisy(suite: pytest.Pytester) -> pytest.Pytester:
    suite.makepyfile(noise=NOISE)
    suite.makeconftest(
        """
        import pytest
        from noise import make_noise

        @pytest.fixture(autouse=True)
        def noise():
            make_noise()  # in each case's setup, where an engine loads
        """
    )
    suite.makepyfile(test_plain="def test_plain():\n    pass\n")
    return suite


def test_a_codeeval_run_drops_dependency_deprecations_and_keeps_the_rest(noisy: pytest.Pytester) -> None:
    result = noisy.runpytest("-p", "no:cacheprovider", "--engine=reference", "--datasets=reasoning_sample",
                             "--samples=1", "test_codeeval.py")
    result.assert_outcomes(passed=1, warnings=len(KEPT))
    out = result.stdout.str()
    assert not [text for text in DROPPED if text in out]
    assert [text for text in KEPT if text in out] == KEPT


def test_a_run_without_codeeval_cases_is_left_alone(noisy: pytest.Pytester) -> None:
    result = noisy.runpytest("-p", "no:cacheprovider", "test_plain.py")
    result.assert_outcomes(passed=1, warnings=len(DROPPED + KEPT))
    out = result.stdout.str()
    assert [text for text in DROPPED + KEPT if text in out] == DROPPED + KEPT


def test_the_real_torch_jit_notice_is_dropped(suite: pytest.Pytester) -> None:
    """The notice a vLLM load raises 14 times, from torch itself (PYTORCH_JIT=0:
    script_method warns, then hands the function back uncompiled)."""
    pytest.importorskip("torch")
    suite._monkeypatch.setenv("PYTORCH_JIT", "0")
    suite.makeconftest(
        """
        import pytest

        @pytest.fixture(autouse=True)
        def torch_notice():
            import torch

            torch.jit.script_method(lambda self: None)
        """
    )
    suite.makepyfile(test_plain="def test_plain():\n    pass\n")
    codeeval = suite.runpytest_subprocess("-p", "no:cacheprovider", "--engine=reference",
                                          "--datasets=reasoning_sample", "--samples=1", "test_codeeval.py")
    codeeval.assert_outcomes(passed=1)
    assert "torch.jit.script_method` is deprecated" not in codeeval.stdout.str()
    plain = suite.runpytest_subprocess("-p", "no:cacheprovider", "test_plain.py")
    plain.assert_outcomes(passed=1, warnings=1)
    assert "torch.jit.script_method` is deprecated" in plain.stdout.str()


def test_a_command_line_filter_still_wins(noisy: pytest.Pytester) -> None:
    result = noisy.runpytest("-p", "no:cacheprovider", "-W", "default::DeprecationWarning", "--engine=reference",
                             "--datasets=reasoning_sample", "--samples=1", "test_codeeval.py")
    assert "torch-internal deprecation" in result.stdout.str()


def test_the_lines_are_valid_filters() -> None:
    from _pytest.config import parse_warning_filter

    for line in dependency_filter_lines():
        action, message, category, module, lineno = parse_warning_filter(line, escape=False)
        with warnings.catch_warnings():
            warnings.filterwarnings(action, message, category, module, lineno)
