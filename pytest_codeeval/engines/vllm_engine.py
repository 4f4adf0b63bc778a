"""The vLLM offline engine (``vllm.LLM``): one model, one preset, batched generation.

vLLM is imported inside ``_load`` only, so collection, ``--collect-only`` and
the model-free engines never pay for (or need) it.

Why the pieces look the way they do:

* Every request of a call goes to vLLM in one ``llm.chat`` (chat prompts) or
  ``llm.generate`` (raw text) call, each with its own ``SamplingParams`` (its
  dataset's token budget, ``n=k`` for k samples): vLLM's scheduler batches
  them; looping over prompts or datasets is several times slower (measured
  here: 30 prompts took 80.7 s as six per-dataset calls, 40.2 s as one).
* On the vLLM CPU backend a per-request seed with temperature > 0 kills the
  engine ("CPU Generator does not use offset", vLLM CPU 0.32), so the seed is
  engine-wide there (``LLM(seed=...)``) and per request only on GPU.
* vLLM does not reliably give GPU memory back when a second model is built in
  the same process: ``close`` shuts the engine core down, waits for its
  processes to exit, and checks with NVML that the memory came back; the next
  ``_load`` checks again and says so if it did not.
* The engine's processes are started under ``lifecycle.watched_start``: if
  this process dies without closing the engine (SIGKILL), the supervisor
  ends them; a record under the report dir lets the next run end them too.
* An engine core that dies during a call (the out-of-memory killer sends
  SIGKILL) leaves vLLM 0.32's ``LLM.chat`` waiting forever: its monitor
  thread notices the death, but the output thread exits without waking the
  waiting call (measured here: still waiting minutes after EngineCore was
  killed). :class:`DeathWatch` wakes it, and the call raises ``EngineDied``
  with the reason; the engine refuses later calls with the same reason.
* Progress: when the caller opened a progress sink (``progress.reporting``),
  each finished request is counted as ``LLMEngine.step`` returns it, and the
  tokens of running requests are read from the output processor by the
  progress thread, never in the generation loop.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import math
import os
import signal
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from .. import defaults
from ..catalog import SAMPLING_KEYS, ModelSpec
from ..errors import EngineError
from ..generation import with_thinking_opened
from ..items import Generation, Prompt
from ..progress import CallProgress, PartProgress, current_sink
from ..runlog import get_logger
from . import lifecycle, memory
from .base import Adapter, EngineDied, ModelEngine, Request, SamplingConfig
from .supervisor import is_alive
from .weights import cpu_dtype, resolve_weights

# vLLM's allowed max_lora_rank values (vllm/config/lora.py MaxLoRARanks, 0.32).
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


# Memory still held on the device after a close, beyond what was used before
# the first load, that we tolerate without a warning (CUDA context, NCCL buffers).
GPU_SLACK_BYTES = 1 * memory.GIB
# How long close() waits for the engine processes and the device memory.
CLOSE_TIMEOUT_S = defaults.ENGINE_CLOSE_TIMEOUT_S

# Per device, the memory in use before this process loaded its first model
# there: the level every later load expects to find again once the previous
# model is closed.
_gpu_baseline_used: dict[str, int] = {}


def cpu_kvcache_gib(settings: dict[str, Any]) -> int:
    """VLLM_CPU_KVCACHE_SPACE for a preset: whole GiB (vLLM reads an int), at least 1."""
    return max(1, math.ceil(float(settings.get("cpu_kvcache_space_gib") or 1)))


def supported_engine_args(kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Split kwargs into those this vLLM's EngineArgs knows and the names it does not.

    Preset keys a vLLM version no longer has (swap_space went away in V1) are
    reported, not passed: LLM() rejects unknown keyword arguments.
    """
    import inspect

    from vllm import LLM
    from vllm.engine.arg_utils import EngineArgs

    # LLM(...) also takes a few arguments of its own (chat_template).
    known = {f.name for f in dataclasses.fields(EngineArgs)} | set(inspect.signature(LLM.__init__).parameters)
    return {k: v for k, v in kwargs.items() if k in known}, sorted(set(kwargs) - known)


def lora_rank(folder: Path) -> int | None:
    """An adapter's rank (adapter_config.json's r), if it says."""
    try:
        return int(json.loads((folder / "adapter_config.json").read_text())["r"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class VLLMEngine(ModelEngine):
    kind = "vllm"

    def __init__(self, model: ModelSpec, settings: dict[str, Any], options: dict[str, Any]) -> None:
        super().__init__(model, settings, options)
        self.seed = int(options.get("seed") or 0)
        self.model_path = ""
        self.engine_kwargs: dict[str, Any] = {}
        self._llm: Any = None
        self._on_gpu = False
        self._nvml: memory.NvmlGroup | None = None
        self._engine_pids: set[int] = set()
        self._gpu_used_before_load = 0
        self.adapters: list[Adapter] = list(options.get("adapters") or ())
        self._adapter_dirs: dict[str, str] | None = None
        self._lora_ids: dict[str, int] = {}
        self._model_sampling: dict[str, Any] | None = None
        self._watch: lifecycle.EngineWatch | None = None
        self._dead: str | None = None  # why the engine died, once it has

    # ----------------------------------------------------------------- load
    def _load(self) -> None:
        self.model_path = self.resolve_model()
        try:
            import vllm
            from vllm import LLM
            from vllm.platforms import current_platform
        except ImportError as e:
            raise EngineError(
                f"the vllm engine needs the vllm package ({e}). Install it: "
                "pip install 'pytest-codeeval[gpu]' on a GPU machine, 'pytest-codeeval[cpu]' without one."
            ) from e

        self._on_gpu = not current_platform.is_cpu()
        self.engine_kwargs, ignored = supported_engine_args(self.build_engine_kwargs(self._on_gpu))
        self.stats.extra.update(
            vllm_version=vllm.__version__,
            model_path=self.model_path,
            engine_args={k: v for k, v in self.engine_kwargs.items() if k != "model"},
            ignored_settings=ignored,
        )

        env_backup: dict[str, str | None] = {}
        if self._on_gpu and self.stats.devices:
            # The engine core is spawned: it sees exactly this engine's devices (placement.py).
            env_backup["CUDA_VISIBLE_DEVICES"] = os.environ.get("CUDA_VISIBLE_DEVICES")
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(self.stats.devices)
        before = memory.child_pids()
        if self._on_gpu:
            self._check_gpu_before_load()
            # vLLM takes its memory fraction of each device up front: what it
            # reserved, not what the model needs
            self.stats.memory_kind = "gpu_reserved"
            assert self._nvml is not None
            self.stats.device = self._nvml.name()
            self._gpu_used_before_load = self._nvml.info()[0]
            sampler = memory.PeakSampler("gpu", self._nvml, baseline=self._gpu_used_before_load)
        else:
            self.stats.memory_kind = "cpu_rss"
            self.stats.device = "cpu"
            # The engine core is a spawned child: it reads these from the environment.
            kv_gib = cpu_kvcache_gib(self.settings)
            env_backup["VLLM_CPU_KVCACHE_SPACE"] = os.environ.get("VLLM_CPU_KVCACHE_SPACE")
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(kv_gib)
            self.stats.extra["cpu_kvcache_space_gib"] = kv_gib
            # the engine's own processes: those started since (not pytest's)
            sampler = memory.PeakSampler("cpu_rss", pids=lambda: memory.child_pids() - before)

        self._dead = None
        try:
            with lifecycle.watched_start(f"{self.model.name} (vllm)") as watch, sampler:
                self._watch = watch
                before = memory.child_pids()  # the supervisor (started by watched_start) is no engine process
                self._llm = LLM(**self.engine_kwargs)
        except BaseException as e:  # an interrupt during a long load must not leave the engine behind either
            self._engine_pids = memory.engine_pids(before)
            self._llm = None
            memory.wait_gone(self._engine_pids, timeout_s=10 if isinstance(e, Exception) else 0)
            self._release_watch()
            if not isinstance(e, Exception):
                raise
            raise EngineError(
                f"vLLM could not load model {self.model.name!r} from {self.model_path}: {type(e).__name__}: {e}. "
                f"Check the model's catalog entry (hf_id/path, dtype, max_model_len) and the preset's settings "
                f"({', '.join(f'{k}={v}' for k, v in self.stats.extra['engine_args'].items())})."
            ) from e
        finally:
            for key, value in env_backup.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        self._engine_pids = memory.engine_pids(before)
        watch.adopt(self._engine_pids)
        self.stats.peak_memory_bytes = max(self.stats.peak_memory_bytes or 0, sampler.peak)
        self.stats.extra["load_peak_memory_bytes"] = sampler.peak

        if self.model.chat and not getattr(self._llm.get_tokenizer(), "chat_template", None):
            self.close()
            raise EngineError(
                f"model {self.model.name!r} is kind = \"chat\" but its tokenizer has no chat template. "
                f"Set kind = \"base\" in its catalog entry, or point it at an instruct checkpoint."
            )

    def resolve_model(self) -> str:
        return resolve_weights(self.model, self.options, self.stats)

    def build_engine_kwargs(self, on_gpu: bool) -> dict[str, Any]:
        """``LLM(...)`` keyword arguments from the model entry and the preset settings."""
        s = self.settings
        kwargs: dict[str, Any] = {
            "model": self.model_path,
            "dtype": self.model.dtype,
            "max_model_len": int(s.get("max_model_len") or self.model.max_model_len),
            "max_num_seqs": int(s["max_num_seqs"]),
            "enable_prefix_caching": bool(s.get("enable_prefix_caching", True)),
            "seed": self.seed,
        }
        if self.model.source == "hf" and self.model.revision:
            kwargs["revision"] = self.model.revision
        if s.get("max_num_batched_tokens"):
            kwargs["max_num_batched_tokens"] = int(s["max_num_batched_tokens"])
        if self.adapters:
            # One load serves the base and every adapter its cases ask for, all in one batch.
            # One LoRA slot more than adapters: on vLLM CPU 0.32, when every slot holds an
            # adapter of the batch, the batch's base requests get wrong answers (measured,
            # README "LoRA adapters compared like models"); with a slot to spare, none did.
            ranks = [lora_rank(Path(d)) for d in self.adapter_dirs().values()]
            need = max((r for r in ranks if r), default=16)
            kwargs.update(enable_lora=True, max_loras=len(self.adapters) + 1,
                          max_lora_rank=next((r for r in LORA_RANKS if r >= need), need))
        # The catalog's [vllm] table last: any engine argument, as the user wrote it.
        kwargs.update(self.model.vllm)
        if on_gpu:
            kwargs.update(
                gpu_memory_utilization=float(s["gpu_memory_utilization"]),
                tensor_parallel_size=int(self.model.tensor_parallel_size),
                enforce_eager=bool(s["enforce_eager"]),
                kv_cache_dtype=str(s.get("kv_cache_dtype") or "auto"),
                swap_space=float(s.get("swap_space_gib") or 0),
            )
        else:
            # GPU-only settings (memory fraction, fp8 KV cache, tensor parallel)
            # do not apply to the CPU backend; its KV cache is sized by env var.
            kwargs["enforce_eager"] = bool(s.get("cpu_enforce_eager", True))
            # vLLM's CPU backend falls back from oneDNN to plain torch for bf16
            # matmuls on CPUs without native bf16 (weights.cpu_dtype).
            kwargs["dtype"], fallback = cpu_dtype(kwargs["dtype"])
            if fallback:
                self.stats.extra["dtype_fallback"] = fallback
        return kwargs

    def _check_gpu_before_load(self) -> None:
        """On each of the engine's devices: say so when the previous model's memory
        did not come back, and refuse a load that cannot fit."""
        self._nvml = memory.NvmlGroup(self.stats.devices or None)
        per_device = self._nvml.per_device()
        self.stats.extra["gpu_free_before_load_bytes"] = sum(free for _, free, _ in per_device.values())
        where = len(per_device) > 1
        for device, (used, free, total) in per_device.items():
            leftover = used - _gpu_baseline_used.setdefault(device, used)
            on = f" on GPU {device}" if where else ""
            if leftover > GPU_SLACK_BYTES:
                self.stats.extra.setdefault("gpu_memory_not_returned_bytes", {})[device] = leftover
                warnings.warn(
                    f"before loading {self.model.name}: {leftover / memory.GIB:.1f} GiB of GPU memory{on} used since "
                    f"this session's first load has not come back (a previous model's engine may still be alive). "
                    f"Free: {free / memory.GIB:.1f} of {total / memory.GIB:.1f} GiB.",
                    RuntimeWarning,
                    stacklevel=2,
                )
            need = float(self.settings["gpu_memory_utilization"]) * total
            if free < need:
                raise EngineError(
                    f"model {self.model.name!r}: the preset asks vLLM for {need / memory.GIB:.1f} GiB{on} "
                    f"(gpu_memory_utilization={self.settings['gpu_memory_utilization']}) but only "
                    f"{free / memory.GIB:.1f} GiB of {total / memory.GIB:.1f} GiB is free. Free the GPU, or use "
                    "--preset memory_optimized, or lower gpu_memory_utilization in the model's [engine] table."
                )

    # ------------------------------------------------------------- generate
    def generate(self, requests: Sequence[Request]) -> list[list[Generation]]:
        if self._dead is not None:
            raise EngineDied(f"the vLLM engine of {self.model.name!r} died earlier in this run: {self._dead}")
        if self._llm is None:
            raise EngineError(f"engine for {self.model.name!r} is not loaded; call load() first.")
        from vllm import SamplingParams

        results: list[list[Generation]] = [[] for _ in requests]
        prompts = [r.prompt for r in requests]
        # What the model's own generation_config.json leaves to --sampling model.
        settings = [self.effective_sampling(r.sampling) for r in requests]
        too_long = self._too_long(prompts, [r.sampling for r in requests])
        chat_idx = [i for i, p in enumerate(prompts) if p.messages is not None and i not in too_long]
        text_idx = [i for i, p in enumerate(prompts) if p.messages is None and i not in too_long]
        made: dict[tuple[SamplingConfig, tuple[str, ...]], Any] = {}

        def params_for(indices: list[int]) -> Any:
            keys = [(settings[i], tuple(prompts[i].stop)) for i in indices]
            for key in keys:
                if key not in made:
                    made[key] = self._sampling_params(SamplingParams, *key)
            # One object when every request shares it (the usual case), else one per request.
            return made[keys[0]] if len(set(keys)) == 1 else [made[k] for k in keys]

        def lora_for(indices: list[int]) -> Any:
            loras = [self._lora_request(requests[i].adapter) for i in indices]
            return None if all(x is None for x in loras) else loras

        # GPU: device memory over what was used before this model loaded, as at load.
        sampler = memory.PeakSampler("gpu" if self._on_gpu else "cpu_rss", self._nvml,
                                     baseline=self._gpu_used_before_load, pids=lambda: self._engine_pids)
        start = time.perf_counter()
        budget = max((requests[i].sampling.max_new_tokens for i in chat_idx + text_idx), default=0)
        with sampler, self._guarded_call(current_sink(), len(chat_idx) + len(text_idx), budget):
            outputs: dict[int, Any] = {}
            # llm.chat takes one chat_template_kwargs per call: one call per thinking state
            # (a run has one, unless a base and its adapters think differently).
            for kwargs_key, group in _by_template_kwargs(chat_idx, requests).items():
                batch = [list(prompts[i].messages or ()) for i in group]
                got = self._llm.chat(batch, params_for(group), use_tqdm=False, add_generation_prompt=True,
                                     lora_request=lora_for(group), chat_template_kwargs=dict(kwargs_key) or None)
                outputs.update(zip(group, got))
            if text_idx:
                batch_text = [prompts[i].text or "" for i in text_idx]
                got = self._llm.generate(batch_text, params_for(text_idx), use_tqdm=False,
                                         lora_request=lora_for(text_idx))
                outputs.update(zip(text_idx, got))
        wall = time.perf_counter() - start

        prompt_tokens = completion_tokens = 0
        for i, req in enumerate(requests):
            n = max(1, int(req.sampling.n))
            if i in too_long:
                results[i] = [Generation(req.prompt.item_id, j, "", too_long[i], 0, "prompt_too_long") for j in range(n)]
                continue
            out = outputs[i]
            p_tokens = len(out.prompt_token_ids or ())
            prompt_tokens += p_tokens
            ordered = sorted(out.outputs, key=lambda c: c.index)
            if settings[i].greedy:
                ordered = ordered[:1] * n
            rendered = getattr(out, "prompt", None) if isinstance(getattr(out, "prompt", None), str) else None
            for j, c in enumerate(ordered):
                text = with_thinking_opened(c.text, req.sampling, rendered)
                results[i].append(Generation(req.prompt.item_id, j, text, p_tokens, len(c.token_ids), c.finish_reason))
            # Tokens the engine actually generated (a copied greedy sample costs nothing).
            completion_tokens += sum(len(c.token_ids) for c in out.outputs)
        self.stats.peak_memory_bytes = max(self.stats.peak_memory_bytes or 0, sampler.peak)
        n_max = max((r.sampling.n for r in requests), default=1)
        self.last_call = self.call_figures(wall, len(requests), n_max, any(x.greedy for x in settings),
                                           prompt_tokens, completion_tokens, peak_memory_bytes=sampler.peak,
                                           prompts_too_long=len(too_long),
                                           seed_scope="request" if self._on_gpu else "engine")
        return results

    @contextmanager
    def _guarded_call(self, sink: CallProgress | PartProgress | None, submitted: int,
                      max_tokens: int) -> Iterator[None]:
        """One generation call: progress counted (when a sink is open), a dead
        engine turned into ``EngineDied`` with its reason instead of a call
        that waits forever."""
        engine = self._llm.llm_engine
        watch = DeathWatch(self._llm, self._watch)
        patched = False
        if not submitted:
            sink = None  # every prompt was too long: no call, nothing to show
        if sink is not None:
            sink.start(submitted, live_tokens=self._live_tokens, max_tokens=max_tokens)
            step = engine.step

            def counted_step() -> Any:
                outs = step()
                for out in outs:
                    if out.finished:
                        sink.advance(1, sum(len(c.token_ids) for c in out.outputs))
                return outs

            engine.step = counted_step  # an instance attribute over the method, for this call only
            patched = True
        try:
            yield
        except Exception as e:
            reason = watch.reason or watch.check()
            if reason is None and type(e).__name__ == "EngineDeadError":
                reason = f"{type(e).__name__}: {e}"
            if reason is None:
                raise
            self._dead = reason
            get_logger("engines").error("model %s: the vLLM engine died during generation: %s", self.model.name, reason)
            finished = f"{sink.done} had finished, " if sink is not None else ""
            raise EngineDied(
                f"the vLLM engine of {self.model.name!r} died while generating {submitted} prompt(s) ({finished}the "
                f"call's results are lost): {reason}. If it ran out of memory, lower the load (--preset "
                f"memory_optimized, a smaller max_num_seqs or max_model_len); the stored results are kept and a "
                f"rerun generates only what is missing."
            ) from e
        finally:
            watch.stop()
            if patched:
                del engine.step
            if sink is not None:
                sink.finish()

    def _live_tokens(self) -> list[int]:
        """Tokens generated so far by each request still running (read by the progress thread)."""
        states = list(self._llm.llm_engine.output_processor.request_states.values())  # one atomic copy
        return [s.detokenizer.num_output_tokens() for s in states if s.detokenizer is not None]

    def _sampling_params(self, cls: Any, sampling: SamplingConfig, stop: tuple[str, ...]) -> Any:
        """``sampling`` as effective_sampling made it: a value still None is vLLM's default."""
        # vLLM refuses n > 1 with greedy decoding ("n must be 1 when using greedy
        # sampling"); greedy samples are identical, so one is generated and copied.
        greedy = sampling.greedy
        kwargs: dict[str, Any] = {
            "n": 1 if greedy else max(1, int(sampling.n)),
            "max_tokens": int(sampling.max_new_tokens),
        }
        kwargs.update(sampling.set_values())
        if greedy:
            kwargs["top_p"] = 1.0
        if stop:
            kwargs["stop"] = list(stop)
        if self._on_gpu and not greedy:
            kwargs["seed"] = int(sampling.seed)  # per-request seeds only where they work (not on CPU)
        return cls(**kwargs)

    def effective_sampling(self, sampling: SamplingConfig) -> SamplingConfig:
        """With --sampling model, what the catalog does not pin comes from the model's
        generation_config.json (vLLM's generation_config="auto" reads it; it applies it
        only to requests without SamplingParams, so it is merged here)."""
        if sampling.mode != "model" or all(getattr(sampling, k) is not None for k in SAMPLING_KEYS):
            return sampling
        defaults_ = self.model_sampling_defaults()
        fill = {k: defaults_[k] for k in SAMPLING_KEYS if getattr(sampling, k) is None and k in defaults_}
        return dataclasses.replace(sampling, **fill) if fill else sampling

    def model_sampling_defaults(self) -> dict[str, Any]:
        """The model's recommended sampling as vLLM reads it (recorded in the engine's stats)."""
        if self._model_sampling is None:
            try:
                diff = dict(self._llm.model_config.get_diff_sampling_param())
            except Exception as e:  # an older vLLM without it: the engine's neutral defaults
                diff, self.stats.extra["generation_config_error"] = {}, f"{type(e).__name__}: {e}"
            self._model_sampling = {k: v for k, v in diff.items() if k in SAMPLING_KEYS}
            self.stats.extra["generation_config_sampling"] = dict(self._model_sampling)
        return self._model_sampling

    def adapter_dirs(self) -> dict[str, str]:
        """Each adapter's local folder: a hub id is fetched once (at its revision)."""
        if self._adapter_dirs is None:
            dirs: dict[str, str] = {}
            for a in self.adapters:
                if Path(a.source).expanduser().is_dir():
                    dirs[a.name] = str(Path(a.source).expanduser())
                    continue
                try:
                    from huggingface_hub import snapshot_download

                    dirs[a.name] = snapshot_download(a.source, revision=a.revision or None)
                except Exception as e:
                    raise EngineError(
                        f"LoRA adapter {a.name!r}: {a.source!r} is not a local folder and could not be fetched from "
                        f"the hub ({type(e).__name__}: {e}). Set adapter to a folder with adapter_config.json."
                    ) from e
            self._adapter_dirs = dirs
            self.stats.extra["lora_adapters"] = dict(dirs)
        return self._adapter_dirs

    def _lora_request(self, adapter: Adapter | None) -> Any:
        if adapter is None:
            return None
        from vllm.lora.request import LoRARequest

        if adapter.name not in self.adapter_dirs():
            raise EngineError(f"a request asks for LoRA adapter {adapter.name!r}, which engine "
                              f"{self.model.name!r} was not loaded with.")
        lora_id = self._lora_ids.setdefault(adapter.name, len(self._lora_ids) + 1)
        return LoRARequest(adapter.name, lora_id, self.adapter_dirs()[adapter.name])

    def _too_long(self, prompts: Sequence[Prompt], samplings: Sequence[SamplingConfig] = ()) -> dict[int, int]:
        """Prompts vLLM would reject for the whole batch: index -> token count.

        vLLM raises for a prompt at or over max_model_len, which would fail every
        other prompt of the call too; such prompts get an empty answer instead.
        """
        limit = int(self.engine_kwargs.get("max_model_len") or self.model.max_model_len)
        tokenizer = self._llm.get_tokenizer()
        found: dict[int, int] = {}
        for i, p in enumerate(prompts):
            # Byte-level tokenizers spend at least one byte per token, so a prompt with
            # fewer UTF-8 bytes than the limit (plus room for the chat template's own
            # tokens) cannot reach it; only long prompts are worth tokenizing here.
            if len(p.render().encode()) + 256 < limit:
                continue
            if p.messages is not None:
                extra = samplings[i].chat_template_kwargs() if i < len(samplings) else {}
                ids = tokenizer.apply_chat_template(list(p.messages), add_generation_prompt=True, tokenize=True,
                                                    **extra)
                count = len(ids["input_ids"] if isinstance(ids, dict) else ids)
            else:
                count = len(tokenizer.encode(p.text or ""))
            if count >= limit:
                found[i] = count
        return found

    # ---------------------------------------------------------------- close
    def close(self) -> None:
        """Shut the engine core down, wait for its processes, and check that the memory came back."""
        llm, self._llm = self._llm, None
        if llm is not None:
            # After an interrupt the close runs at session finish, where the stream vLLM's
            # log handler was given (pytest's capture, when vllm was imported) is closed:
            # its shutdown messages are dropped instead of printing "--- Logging error ---".
            raise_exceptions, logging.raiseExceptions = logging.raiseExceptions, False
            try:
                llm.llm_engine.engine_core.shutdown()
            except Exception as e:  # an engine that already died still has processes to reap
                self.stats.extra["shutdown_error"] = f"{type(e).__name__}: {e}"
            finally:
                logging.raiseExceptions = raise_exceptions
            del llm
            gc.collect()
        killed = memory.wait_gone(self._engine_pids, timeout_s=CLOSE_TIMEOUT_S)
        self.stats.extra["engine_processes_killed"] = sorted(killed)
        self._engine_pids = set()
        self._release_watch()
        if self._on_gpu and self._nvml is not None:
            self._wait_gpu_memory_back()
        super().close()

    def _release_watch(self) -> None:
        if self._watch is not None:
            left = self._watch.alive()
            if left:  # not ours to leave behind: the close must not end with processes still running
                memory.wait_gone(set(left), timeout_s=0)
            self._watch.release()
            self._watch = None

    def _wait_gpu_memory_back(self) -> None:
        try:
            import torch

            if torch.cuda.is_initialized():
                torch.cuda.empty_cache()
        except ImportError:
            pass
        assert self._nvml is not None
        deadline = time.monotonic() + CLOSE_TIMEOUT_S
        leftover = 0
        while True:
            leftover = self._nvml.info()[0] - sum(_gpu_baseline_used.get(m.device, 0) for m in self._nvml.members)
            if leftover <= GPU_SLACK_BYTES or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.stats.extra["gpu_memory_after_close_bytes"] = leftover
        if leftover > GPU_SLACK_BYTES:
            warnings.warn(
                f"after closing {self.model.name}: {leftover / memory.GIB:.1f} GiB of GPU memory did not come back "
                f"within {CLOSE_TIMEOUT_S:.0f} s; the next model may not fit.",
                RuntimeWarning,
                stacklevel=2,
            )

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "model_path": self.model_path,
            "device": self.stats.device,
            "engine_args": self.stats.extra.get("engine_args", {}),
            "vllm_version": self.stats.extra.get("vllm_version", ""),
            # What --sampling model took from the model's generation_config.json, and the LoRA adapters served.
            **{k: self.stats.extra[k] for k in ("generation_config_sampling", "lora_adapters") if k in self.stats.extra},
        }


def _by_template_kwargs(indices: list[int], requests: Sequence[Request]) -> dict[tuple[tuple[str, Any], ...], list[int]]:
    """Chat request indices grouped by the chat template arguments they need, in first-seen order."""
    groups: dict[tuple[tuple[str, Any], ...], list[int]] = {}
    for i in indices:
        groups.setdefault(tuple(sorted(requests[i].sampling.chat_template_kwargs().items())), []).append(i)
    return groups


class DeathWatch:
    """A thread that notices an engine core dying during a call and wakes the call.

    It polls twice a second (a flag and a few /proc reads): vLLM's own
    ``engine_dead`` flag, and whether each engine process still runs. On a
    death it puts vLLM's ``EngineDeadError`` into the sync client's output
    queue, the queue the waiting call reads, so the call raises at once.
    """

    POLL_S = 0.5

    def __init__(self, llm: Any, watch: lifecycle.EngineWatch | None) -> None:
        self.llm = llm
        self.procs = dict(watch.procs) if watch else {}
        self.reason: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="codeeval-engine-watch", daemon=True)
        self._thread.start()

    def check(self) -> str | None:
        """Why the engine is dead, or None while it lives."""
        gone = [pid for pid, start in self.procs.items() if not is_alive(pid, start)]
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        flagged = bool(getattr(getattr(core, "resources", None), "engine_dead", False))
        if not gone and not flagged:
            return None
        return _death_reason(core, gone)

    def _run(self) -> None:
        while not self._stop.wait(self.POLL_S):
            reason = self.check()
            if reason is not None:
                self.reason = reason
                queue = getattr(getattr(self.llm.llm_engine, "engine_core", None), "outputs_queue", None)
                if queue is not None:
                    from vllm.v1.engine.exceptions import EngineDeadError

                    queue.put_nowait(EngineDeadError())
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def _death_reason(core: Any, gone: list[int]) -> str:
    """The engine core's exit, in words: a SIGKILL on Linux is most often the out-of-memory killer."""
    codes = []
    manager = getattr(getattr(core, "resources", None), "engine_manager", None)
    for proc in getattr(manager, "processes", None) or []:
        code = getattr(proc, "exitcode", None)
        if code is not None:
            codes.append((proc.pid, code))
    if codes:
        pid, code = codes[0]
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            hint = " (on Linux most often the out-of-memory killer: see `dmesg`)" if -code == signal.SIGKILL else ""
            return f"the engine core process {pid} was killed by {name}{hint}"
        return f"the engine core process {pid} exited with code {code} (its log above says why)"
    if gone:
        return f"engine process(es) {', '.join(map(str, gone))} exited"
    return "vLLM marked its engine core dead"
