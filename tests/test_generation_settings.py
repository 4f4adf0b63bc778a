"""Thinking, budgets, sampling modes, vLLM pass-through, LoRA plumbing and pinned data,
without a model: the dry-run plan, usage errors, engine arguments, store keys and the
requests the server engine sends (the real engines are in test_model_settings_engines.py)."""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from pytest_codeeval.catalog import ModelSpec, load_catalog
from pytest_codeeval.engines.base import Adapter, Request, SamplingConfig
from pytest_codeeval.engines.cached import CachingEngine
from pytest_codeeval.engines.server import ServerEngine
from pytest_codeeval.engines.vllm_engine import VLLMEngine
from pytest_codeeval.errors import CatalogError
from pytest_codeeval.fingerprint import dataset_sha256
from pytest_codeeval.items import Item, Prompt
from pytest_codeeval.vllm_args import engine_arg_names

CATALOG = load_catalog()
QWEN3 = {"qwen3_8b", "qwen3_14b", "qwen3_32b"}


def _plan(suite: pytest.Pytester, *args: str) -> dict[str, Any]:
    result = suite.runpytest("--collect-only", "-q", *args)
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    (path,) = (suite.path / "reports" / "plans").glob("*_plan.json")
    plan = json.loads(path.read_text())
    path.unlink()
    plan["stdout"] = result.stdout.str()
    return plan


def _error(result: pytest.RunResult) -> str:
    assert result.ret == 4, result.stdout.str() + result.stderr.str()
    return result.stderr.str()


# ------------------------------------------------------------------ the plan


def test_qwen3_thinks_within_its_context_in_the_coding_specialists_plan(suite: pytest.Pytester) -> None:
    plan = _plan(suite, "-m", "coding_specialists", "--preset=balanced")
    assert len(plan["cases"]) == 35
    for case in plan["cases"]:
        gen = case["generation"]
        assert set(gen) >= {"thinking", "max_new_tokens", "max_model_len", "temperature", "top_p", "sampling"}
        if case["model"] in QWEN3:
            assert gen["thinking"] == "on" and gen["max_model_len"] == 32768
            assert 8192 <= gen["max_new_tokens"] < gen["max_model_len"]
            assert gen["max_new_tokens"] == gen["max_thinking_tokens"] + gen["answer_tokens"]
        else:  # Qwen2.5-Coder: no switch, never thinks
            assert gen["thinking"] is None and gen["max_thinking_tokens"] == 0
            assert gen["max_new_tokens"] == gen["answer_tokens"] <= 1280
        assert (gen["sampling"], gen["temperature"], gen["top_p"]) == ("greedy", 0.0, 1.0)
    # Greedy thinking is what the Qwen3 card warns against: each such model is named once.
    for model in QWEN3:
        assert plan["stdout"].count(f"WARNING: model {model} thinks and decodes greedily") == 1
    assert "qwen2_5_coder_7b thinks" not in plan["stdout"]


def test_thinking_off_turns_it_off_for_every_qwen3_case(suite: pytest.Pytester) -> None:
    plan = _plan(suite, "-m", "coding_specialists", "--preset=balanced", "--thinking", "off")
    qwen3 = [c for c in plan["cases"] if c["model"] in QWEN3]
    assert len(qwen3) == 21
    assert all(c["generation"]["thinking"] == "off" and c["generation"]["max_thinking_tokens"] == 0 for c in qwen3)
    assert all(c["generation"]["max_new_tokens"] <= 1280 for c in qwen3)
    assert "thinks and decodes greedily" not in plan["stdout"]  # nothing thinks


def test_sampling_modes_in_the_plan(suite: pytest.Pytester) -> None:
    base = ("-m", "coding_specialists", "--models", "qwen3_8b,qwen2_5_coder_7b", "--datasets", "humaneval")
    by_model = lambda plan: {c["model"]: c["generation"] for c in plan["cases"]}  # noqa: E731

    model = by_model(_plan(suite, *base, "--sampling", "model"))
    # Qwen3's card, thinking: 0.6 / 0.95 / 20; the coder pins nothing: its generation_config.json decides.
    assert (model["qwen3_8b"]["temperature"], model["qwen3_8b"]["top_p"], model["qwen3_8b"]["top_k"]) == (0.6, 0.95, 20)
    assert model["qwen2_5_coder_7b"]["temperature"] is None and model["qwen2_5_coder_7b"]["sampling"] == "model"

    off = by_model(_plan(suite, *base, "--sampling", "model", "--thinking", "off"))
    assert (off["qwen3_8b"]["temperature"], off["qwen3_8b"]["top_p"]) == (0.7, 0.8)  # the card's non-thinking values

    user = by_model(_plan(suite, *base, "--temperature", "0.4", "--top-p", "0.9", "--top-k", "5"))
    assert all((g["sampling"], g["temperature"], g["top_p"], g["top_k"]) == ("user", 0.4, 0.9, 5)
               for g in user.values())

    plan = _plan(suite, *base, "--sampling", "model")
    assert "decodes greedily" not in plan["stdout"]


def test_max_thinking_tokens_sets_the_budget(suite: pytest.Pytester) -> None:
    plan = _plan(suite, "-m", "coding_specialists", "--models", "qwen3_8b", "--datasets", "humaneval",
                 "--max-thinking-tokens", "2048", "--preset", "memory_optimized")
    (case,) = plan["cases"]
    assert case["generation"] == {**case["generation"], "thinking": "on", "max_thinking_tokens": 2048,
                                  "max_new_tokens": 2048 + 768, "max_model_len": 4096}


# ------------------------------------------------------------------ usage errors


def test_a_budget_that_cannot_fit_the_capped_context_is_a_usage_error(suite: pytest.Pytester) -> None:
    err = _error(suite.runpytest("--collect-only", "-m", "coding_specialists", "--models", "qwen3_8b",
                                 "--preset", "memory_optimized"))
    assert "budget does not fit" in err and "max_model_len 4096" in err and "memory_optimized" in err
    assert "--thinking off" in err and "--max-thinking-tokens" in err


def test_a_model_without_a_switch_cannot_be_switched(suite: pytest.Pytester) -> None:
    err = _error(suite.runpytest("--collect-only", "--models", "qwen2_5_coder_7b", "--datasets", "humaneval",
                                 "--thinking", "on"))
    assert "'qwen2_5_coder_7b' has no thinking switch" in err and "never thinks" in err
    err = _error(suite.runpytest("--collect-only", "--models", "deepseek_r1_distill_qwen_7b", "--datasets",
                                 "humaneval", "--thinking", "off"))
    assert "'deepseek_r1_distill_qwen_7b' has no thinking switch" in err and "always thinks" in err
    # What the model does anyway is no switch: a coder asked not to think runs.
    assert suite.runpytest("--collect-only", "--models", "qwen2_5_coder_7b", "--datasets", "humaneval",
                           "--thinking", "off").ret == 0


@pytest.mark.parametrize("args, words", [
    (("--sampling", "greedy", "--temperature", "0.5"), "--sampling greedy takes no --temperature"),
    (("--sampling", "model", "--top-k", "3"), "--sampling model takes no --top-k"),
    (("--n-samples", "4"), "identical samples"),
    (("--max-thinking-tokens", "-1"), "--max-thinking-tokens must be >= 0"),
    (("--temperature", "0.7", "--top-p", "1.5"), "--top-p must be in (0, 1]"),
])
def test_sampling_option_errors(suite: pytest.Pytester, args: tuple[str, ...], words: str) -> None:
    assert words in _error(suite.runpytest("--collect-only", "--datasets", "humaneval", *args))


def test_pass_at_k_with_the_models_own_sampling(suite: pytest.Pytester) -> None:
    plan = _plan(suite, "-m", "coding_specialists", "--models", "qwen3_8b", "--datasets", "humaneval",
                 "--sampling", "model", "--n-samples", "4", "--pass-k", "1,4")
    assert plan["cases"][0]["generation"]["temperature"] == 0.6


# ------------------------------------------------------------------ the catalog


def _catalog(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "catalog.toml"
    path.write_text(text)
    return load_catalog(None, path)


def test_vllm_table_names_are_checked_against_vllms_engine_args(tmp_path: Path) -> None:
    names = engine_arg_names()
    assert names is not None and {"quantization", "trust_remote_code", "speculative_config", "enable_lora",
                                  "chat_template", "tokenizer"} <= names
    ok = _catalog(tmp_path, '[models.qwen3_8b.vllm]\nquantization = "awq"\ntrust_remote_code = true\n'
                            'speculative_config = { method = "ngram", num_speculative_tokens = 4 }\n')
    assert ok.model("qwen3_8b").vllm["quantization"] == "awq"
    with pytest.raises(CatalogError, match=r"'quantisation' is not a vLLM engine argument .*Did you mean quantization"):
        _catalog(tmp_path, '[models.qwen3_8b.vllm]\nquantisation = "awq"\n')
    with pytest.raises(CatalogError, match=r"max_model_len is set through the model's max_model_len"):
        _catalog(tmp_path, '[models.qwen3_8b.vllm]\nmax_model_len = 4096\n')
    with pytest.raises(CatalogError, match=r"max_num_seqs is set through \[models.NAME.engine\]"):
        _catalog(tmp_path, '[models.qwen3_8b.vllm]\nmax_num_seqs = 4\n')


def test_reading_vllms_argument_names_imports_no_engine() -> None:
    import subprocess

    code = ("import sys; from pytest_codeeval.vllm_args import engine_arg_names; assert engine_arg_names(); "
            "print(sorted(m for m in ('vllm', 'torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_generation_fields_are_checked(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="thinking_switch = true needs reasoning = true"):
        _catalog(tmp_path, "[models.qwen2_5_coder_7b]\nthinking_switch = true\n")
    with pytest.raises(CatalogError, match=r"sampling: unknown setting\(s\) temp"):
        _catalog(tmp_path, "[models.qwen3_8b.sampling]\ntemp = 0.6\n")
    with pytest.raises(CatalogError, match="top_k must be an integer"):
        _catalog(tmp_path, "[models.qwen3_8b.sampling]\ntop_k = 2.5\n")


def test_an_adapter_entry_inherits_its_base_and_may_not_change_its_engine(tmp_path: Path) -> None:
    cat = _catalog(tmp_path, '[models.coder_ft]\nbase = "qwen3_8b"\nadapter = "/models/my-lora"\n'
                             'family = "mine"\n')
    ft, base = cat.model("coder_ft"), cat.model("qwen3_8b")
    assert (ft.hf_id, ft.max_model_len, ft.thinking_switch, ft.sampling) == (
        base.hf_id, base.max_model_len, True, base.sampling)
    assert (ft.engine_model, ft.family, ft.adapter) == ("qwen3_8b", "mine", "/models/my-lora")
    with pytest.raises(CatalogError, match="an adapter entry cannot set dtype"):
        _catalog(tmp_path, '[models.coder_ft]\nbase = "qwen3_8b"\nadapter = "x"\ndtype = "float16"\n')
    with pytest.raises(CatalogError, match=r"unknown model 'qwen3_8'.*Did you mean qwen3_8b"):
        _catalog(tmp_path, '[models.coder_ft]\nbase = "qwen3_8"\nadapter = "x"\n')
    with pytest.raises(CatalogError, match="adapter is set but base is not"):
        _catalog(tmp_path, '[models.qwen3_8b]\nadapter = "x"\n')


def test_a_preset_caps_the_context_but_never_raises_it() -> None:
    small = dataclasses.replace(CATALOG.model("smollm2_135m_instruct"), max_model_len=2048)
    capped = CATALOG.preset("memory_optimized")
    assert CATALOG.engine_settings(CATALOG.model("qwen3_8b"), capped)["max_model_len"] == 4096
    # 4096 would be past this model's context (vLLM refuses that at load).
    assert CATALOG.engine_settings(small, capped)["max_model_len"] == 2048
    assert CATALOG.engine_settings(CATALOG.model("qwen3_8b"), CATALOG.preset("balanced"))["max_model_len"] == 32768


def test_every_hub_dataset_is_pinned() -> None:
    hub = [d for d in CATALOG.datasets.values() if d.hf_id]
    assert hub and all(len(d.revision) == 40 and int(d.revision, 16) >= 0 for d in hub)


# ------------------------------------------------------------------ engine arguments


def _vllm(model: ModelSpec, preset: str = "balanced", **options: Any) -> VLLMEngine:
    return VLLMEngine(model, CATALOG.engine_settings(model, CATALOG.preset(preset)), {"seed": 1, **options})


def test_the_vllm_table_reaches_the_engine_arguments() -> None:
    model = dataclasses.replace(CATALOG.model("qwen3_8b"), vllm={"quantization": "awq", "trust_remote_code": True,
                                                                  "chat_template": "/t.jinja"})
    kwargs = _vllm(model).build_engine_kwargs(on_gpu=True)
    assert (kwargs["quantization"], kwargs["trust_remote_code"], kwargs["chat_template"]) == ("awq", True, "/t.jinja")
    assert kwargs["max_model_len"] == 32768


def test_lora_adapters_enable_lora_with_a_rank_vllm_accepts(tmp_path: Path) -> None:
    folders = []
    for name, rank in (("a", 4), ("b", 12)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "adapter_config.json").write_text(json.dumps({"r": rank}))
        folders.append(Adapter(name=name, source=str(folder)))
    kwargs = _vllm(CATALOG.model("smollm2_135m_instruct"), adapters=folders).build_engine_kwargs(on_gpu=False)
    assert (kwargs["enable_lora"], kwargs["max_loras"], kwargs["max_lora_rank"]) == (True, 3, 16)  # a slot to spare
    assert "enable_lora" not in _vllm(CATALOG.model("smollm2_135m_instruct")).build_engine_kwargs(on_gpu=False)


# ------------------------------------------------------------------ store keys


class _NoStore:
    pass


def _keys(*requests: Request) -> list[str]:
    engine = CachingEngine(_NoStore(), {"engine": "vllm", "model": "m"}, lambda: None,  # type: ignore[arg-type]
                           kind="vllm", engine_key="m@balanced")
    return [engine.keys(r, 1)[0] for r in requests]


def test_thinking_sampling_item_content_and_adapter_are_in_the_generation_key() -> None:
    item = Item(id="t/0", task_type="code", prompt="p", reference="r", data={"test": "assert True"})
    prompt = Prompt("t/0", messages=({"role": "user", "content": "p"},))
    on = SamplingConfig(thinking=True, max_new_tokens=900, max_thinking_tokens=400, mode="greedy")
    keys = _keys(
        Request(prompt, item, on),
        Request(prompt, item, dataclasses.replace(on, thinking=False)),
        Request(prompt, item, dataclasses.replace(on, mode="model", temperature=None, top_p=None)),
        Request(prompt, dataclasses.replace(item, data={"test": "assert False"}), on),  # a fixed test
        Request(prompt, item, on, Adapter(name="ft", source="/a", sha256="1")),
        Request(prompt, item, on, Adapter(name="ft", source="/a", sha256="2")),  # the adapter retrained
    )
    assert len(set(keys)) == len(keys)
    assert _keys(Request(prompt, item, on)) == keys[:1]  # and the same request finds the same key


def test_dataset_hash_covers_every_item_field_in_order() -> None:
    a = Item(id="a", task_type="code", prompt="p", reference="r", data={"test": "t"})
    b = Item(id="b", task_type="code", prompt="q", reference="s", data={"test": "u"})
    digest = dataset_sha256([a, b])
    assert len(digest) == 64 and digest == dataset_sha256([a, b])
    assert digest != dataset_sha256([b, a])
    for changed in (dataclasses.replace(a, prompt="p2"), dataclasses.replace(a, reference="r2"),
                    dataclasses.replace(a, data={"test": "t2"}), dataclasses.replace(a, id="a2")):
        assert dataset_sha256([changed, b]) != digest


# ------------------------------------------------------------------ the server engine's requests


def test_the_server_engine_sends_the_thinking_switch_and_the_sampling(monkeypatch: pytest.MonkeyPatch) -> None:
    from test_server_engine import MODEL, MODELS, Stub, completion, options

    def script(path: str, body: dict[str, Any], seen: int) -> tuple[int, Any, dict[str, str]]:
        if path.endswith("/models"):
            return 200, {"data": [*MODELS["data"], {"id": "ft"}]}, {}
        return 200, completion(body), {}

    item = Item(id="t/0", task_type="code", prompt="p", reference="r")
    chat = Prompt("t/0", messages=({"role": "user", "content": "hi"},))
    model_mode = SamplingConfig(mode="model", temperature=0.6, top_p=None, top_k=20, thinking=False,
                                max_new_tokens=64)
    greedy_on = SamplingConfig(mode="greedy", thinking=True, max_new_tokens=64)
    with Stub(script) as stub:
        engine = ServerEngine(MODEL, {}, options(stub.url, adapters=[Adapter("ft", "/a")]))
        engine.load()
        engine.generate([Request(chat, item, model_mode), Request(chat, item, greedy_on, Adapter("ft", "/a")),
                         Request(Prompt("t/0", text="def f():"), item, greedy_on)])
    bodies = [b for p, b in stub.requests if p.endswith("completions")]
    (first,) = [b for b in bodies if "messages" in b and b["model"] != "ft"]
    (second,) = [b for b in bodies if b["model"] == "ft"]
    (text,) = [b for b in bodies if "prompt" in b]
    assert first["chat_template_kwargs"] == {"enable_thinking": False}
    assert (first["temperature"], first["top_k"], "top_p" not in first) == (0.6, 20, True)  # unset: the server's default
    assert second["chat_template_kwargs"] == {"enable_thinking": True} and second["model"] == "ft"
    assert second["temperature"] == 0.0 and "chat_template_kwargs" not in text  # a raw prompt has no template


def test_the_server_engine_refuses_an_adapter_the_server_does_not_serve() -> None:
    from test_server_engine import MODEL, Stub, ok_script, options
    from pytest_codeeval.errors import EngineError

    with Stub(ok_script) as stub:
        engine = ServerEngine(MODEL, {}, options(stub.url, adapters=[Adapter("ft", "/a")]))
        with pytest.raises(EngineError, match=r"does not serve the LoRA adapter\(s\) ft.*--lora-modules ft=PATH"):
            engine.load()


# ------------------------------------------------------------------ pinned data


def test_hub_loads_ask_for_the_pinned_revision(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_codeeval.datasets.context import LoadContext
    from pytest_codeeval.datasets.hub import download_hub_file, load_hub_rows

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(
        load_dataset=lambda *a, **k: calls.append((a, k)) or [{"x": 1}]))
    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(
        hf_hub_download=lambda *a, **k: calls.append((a, k)) or "/f"))
    from pytest_codeeval.datasets import hub

    monkeypatch.setattr(hub, "hub_problem", lambda retries: None)  # the hub answers (no request is made here)
    ctx = LoadContext(offline=False)
    assert load_hub_rows(CATALOG.dataset("gsm8k"), ctx) == [{"x": 1}]
    download_hub_file(CATALOG.dataset("bfcl_simple"), ctx, "BFCL_v3_simple.json")
    assert calls[0][1]["revision"] == CATALOG.dataset("gsm8k").revision
    assert calls[1][1]["revision"] == CATALOG.dataset("bfcl_simple").revision


def _comparison(root: Path, name: str) -> dict[str, Any]:
    return json.loads((root / "reports" / "comparisons" / f"{name}_comparison.json").read_text())


def test_reference_and_replay_runs_record_each_datasets_hash(suite: pytest.Pytester, tmp_path: Path) -> None:
    # (--thinking means nothing to the model-free engines: no error)
    result = suite.runpytest_subprocess("-q", "--engine", "reference", "--datasets", "humaneval,reasoning_sample",
                             "--samples", "3", "--thinking", "on")
    assert result.ret == 0, result.stdout.str()
    datasets = _comparison(suite.path, "custom_balanced")["manifest"]["datasets"]
    assert set(datasets) == {"humaneval", "reasoning_sample"}
    assert datasets["humaneval"]["revision"] == CATALOG.dataset("humaneval").revision
    assert datasets["reasoning_sample"]["revision"] is None  # shipped with the suite
    assert all(d["n_items"] == 3 and len(d["sha256"]) == 64 for d in datasets.values())

    tasks, samples = _task_files(tmp_path, ["    return a + b\n"])
    result = suite.runpytest_subprocess("-q", f"--datasets={tasks}", f"--completions={samples}")
    assert result.ret == 0, result.stdout.str()
    (entry,) = _comparison(suite.path, "custom_balanced")["manifest"]["datasets"].values()
    assert entry["n_items"] == 2 and len(entry["sha256"]) == 64


def _task_files(tmp_path: Path, completions: list[str], test: str = "    assert candidate(2, 3) == 5\n") -> tuple[Path, Path]:
    tasks = tmp_path / "tasks.jsonl"
    rows = [{"task_id": f"Local/{i}", "prompt": f"def add{i}(a, b):\n", "canonical_solution": "    return a + b\n",
             "test": "def check(candidate):\n" + test, "entry_point": f"add{i}"} for i in range(2)]
    tasks.write_text("".join(json.dumps(r) + "\n" for r in rows))
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps({"task_id": f"Local/{i}", "completion": c}) + "\n"
                               for i in range(2) for c in completions))
    return tasks, samples


def test_a_changed_item_is_generated_and_judged_again_the_others_are_reused(suite: pytest.Pytester,
                                                                           tmp_path: Path) -> None:
    tasks, _ = _task_files(tmp_path, [])
    run = lambda: suite.runpytest_subprocess("-q", "--engine", "reference", f"--datasets={tasks}")  # noqa: E731
    assert run().ret == 0
    first = _comparison(suite.path, "custom_balanced")
    assert run().ret == 0
    second = _comparison(suite.path, "custom_balanced")
    assert second["cases"][0]["performance"]["generations_reused"] == 2
    assert second["manifest"]["datasets"] == first["manifest"]["datasets"]

    rows = [json.loads(line) for line in tasks.read_text().splitlines()]
    rows[1]["test"] = "def check(candidate):\n    assert candidate(2, 2) == 4\n"  # a fixed test, same prompt
    tasks.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert run().ret == 0
    third = _comparison(suite.path, "custom_balanced")
    perf = third["cases"][0]["performance"]
    assert (perf["generated"], perf["generations_reused"], perf["scored"]) == (1, 1, 1)
    assert third["manifest"]["datasets"]["tasks"]["sha256"] != first["manifest"]["datasets"]["tasks"]["sha256"]


# ------------------------------------------------------------------ LoRA cases share their base's engine


def test_a_base_and_its_adapters_share_one_engine(suite: pytest.Pytester, tmp_path: Path) -> None:
    suite.makepyprojecttoml(f"""
        [tool.codeeval.models.qwen3_8b_ft]
        base = "qwen3_8b"
        adapter = "{tmp_path / 'lora'}"

        [tool.codeeval.models.qwen3_8b_ft2]
        base = "qwen3_8b"
        adapter = "{tmp_path / 'lora2'}"
        """)
    result = suite.runpytest("--setup-plan", "--models", "qwen3_8b,qwen3_8b_ft,qwen3_8b_ft2,qwen3_14b",
                             "--datasets", "humaneval,reasoning_sample")
    assert result.ret == 0, result.stdout.str()
    setups = [line.strip() for line in result.outlines if "SETUP    S codeeval_engine" in line]
    assert [s.split("[")[1].rstrip("]").strip("'") for s in setups] == ["qwen3_8b@balanced", "qwen3_14b@balanced"]
    assert sum("::test_codeeval[" in line and "qwen3_8b_ft" in line for line in result.outlines) == 4


# ------------------------------------------------------------------ unclosed thinking, whatever the template


def test_a_reply_whose_template_opened_the_think_block_is_read_as_thinking() -> None:
    from pytest_codeeval.extraction import split_reasoning
    from pytest_codeeval.generation import with_thinking_opened

    always = SamplingConfig(thinking=None, max_thinking_tokens=100)  # an R1 distill: no switch, always thinks
    r1_prompt = "<｜User｜>Add 2 and 3.<｜Assistant｜><think>\n"
    cut = split_reasoning(with_thinking_opened("First, 2 plus 3 is", always, r1_prompt))
    assert (cut.complete, cut.answer) == (False, "")  # without the fix: a complete "answer" of reasoning text
    done = split_reasoning(with_thinking_opened("2 plus 3 is 5.</think>5", always, r1_prompt))
    assert (done.complete, done.reasoning, done.answer) == (True, "2 plus 3 is 5.", "5")
    # Qwen3's template opens nothing: its replies carry their own tags and pass unchanged.
    assert with_thinking_opened("<think>x</think>y", SamplingConfig(thinking=True), "<|im_start|>assistant\n") \
        == "<think>x</think>y"
    assert with_thinking_opened("5", SamplingConfig(thinking=False), None) == "5"  # not thinking: as it is
    # No rendered prompt (a server): a thinking request's reply with no tag at all never closed.
    assert not split_reasoning(with_thinking_opened("still going", SamplingConfig(thinking=True))).complete


def test_a_server_reasoning_parser_cut_off_while_thinking_is_unclosed() -> None:
    from pytest_codeeval.engines.server import _parse
    from pytest_codeeval.extraction import split_reasoning

    def reply(content: str | None, finish: str) -> str:
        payload = {"choices": [{"index": 0, "finish_reason": finish,
                                "message": {"content": content, "reasoning_content": "thinking..."}}]}
        return _parse(payload, chat=True, attempts=1).texts[0]

    assert not split_reasoning(reply(None, "length")).complete
    assert split_reasoning(reply("42", "stop")).answer == "42"
