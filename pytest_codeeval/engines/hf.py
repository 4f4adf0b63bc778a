"""The transformers engine (``--engine hf``): the same interface as vLLM's, with
batched, left-padded ``model.generate`` and the tokenizer's chat template.

For models vLLM cannot serve, and as a cross-check of vLLM's outputs (its
generations are stored under their own key: the engine kind is part of the
generation identity).  It is the slower path: on the CPU here, batched
transformers ran at about half of vLLM's tokens/s on the same prompts
(benchmarks/bench_throughput.py).

Requests are grouped by how they are sampled (a batch shares one
``generate`` call), sorted by prompt length inside a group (less padding),
and cut into batches of ``hf_batch_size`` (an engine setting, default 16).
It runs on the devices placement gave it (placement.py); a model with
``tensor_parallel_size`` > 1 is spread over them with ``device_map="auto"``.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from ..catalog import ModelSpec
from ..errors import EngineError
from ..items import Generation
from .base import ModelEngine, Request, SamplingConfig
from .weights import cpu_dtype, resolve_weights

DEFAULT_BATCH_SIZE = 16


class HFEngine(ModelEngine):
    kind = "hf"

    def __init__(self, model: ModelSpec, settings: dict[str, Any], options: dict[str, Any]) -> None:
        super().__init__(model, settings, options)
        self.batch_size = int(settings.get("hf_batch_size") or DEFAULT_BATCH_SIZE)
        self.seed = int(options.get("seed") or 0)
        self.model_path = ""
        self._lm: Any = None
        self._tok: Any = None
        self._device = "cpu"

    # ----------------------------------------------------------------- load
    def _load(self) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:
            raise EngineError(f"the hf engine needs torch and transformers ({e}): pip install transformers torch") from e
        self.model_path = resolve_weights(self.model, self.options, self.stats)
        on_gpu = torch.cuda.is_available()
        dtype_name = self.model.dtype or "bfloat16"
        if not on_gpu:
            dtype_name, fallback = cpu_dtype(dtype_name)
            if fallback:
                self.stats.extra["dtype_fallback"] = fallback
        dtype = getattr(torch, {"bf16": "bfloat16", "fp16": "float16", "half": "float16"}.get(dtype_name, dtype_name))
        kwargs: dict[str, Any] = {"dtype": dtype}
        if self.model.revision and self.model.source == "hf":
            kwargs["revision"] = self.model.revision
        cuda = self._cuda_indices(torch) if on_gpu else []
        if len(cuda) > 1:  # tensor_parallel_size > 1: layers spread over this engine's devices
            kwargs["device_map"] = "auto"
            kwargs["max_memory"] = {i: torch.cuda.get_device_properties(i).total_memory for i in cuda}
        try:
            self._tok = AutoTokenizer.from_pretrained(self.model_path, padding_side="left")
            self._lm = AutoModelForCausalLM.from_pretrained(self.model_path, **kwargs)
        except (OSError, ValueError) as e:
            raise EngineError(f"transformers could not load model {self.model.name!r} from {self.model_path}: {e}. "
                              "Check the model's catalog entry (hf_id/path, dtype).") from e
        if self._tok.pad_token is None:
            self._tok.pad_token = self._tok.eos_token
        if on_gpu and "device_map" not in kwargs:
            self._lm.to(f"cuda:{cuda[0] if cuda else 0}")
        self._lm.eval()
        self._device = str(next(self._lm.parameters()).device)
        if self.model.chat and not getattr(self._tok, "chat_template", None):
            raise EngineError(f"model {self.model.name!r} is kind = \"chat\" but its tokenizer has no chat template. "
                              "Set kind = \"base\" in its catalog entry, or point it at an instruct checkpoint.")
        self.stats.device = self._device if on_gpu else "cpu"
        self.stats.memory_kind = "gpu_used" if on_gpu else "cpu_rss"
        self.stats.extra.update(model_path=self.model_path, dtype=str(dtype).removeprefix("torch."),
                                batch_size=self.batch_size)

    def _cuda_indices(self, torch: Any) -> list[int]:
        """This engine's devices as torch numbers them (positions in CUDA_VISIBLE_DEVICES)."""
        from ..placement import visible_gpus

        visible = visible_gpus() or [str(i) for i in range(torch.cuda.device_count())]
        wanted = self.stats.devices or visible[: max(1, int(self.model.tensor_parallel_size))]
        return [visible.index(d) for d in wanted if d in visible]

    # ------------------------------------------------------------- generate
    def generate(self, requests: Sequence[Request]) -> list[list[Generation]]:
        if self._lm is None:
            raise EngineError(f"engine for {self.model.name!r} is not loaded; call load() first.")
        import torch

        texts = [self._render(r) for r in requests]
        results: list[list[Generation]] = [[] for _ in requests]
        groups: dict[tuple[SamplingConfig, tuple[str, ...]], list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.sampling, tuple(r.prompt.stop)), []).append(i)
        on_gpu = self._device.startswith("cuda")
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        prompt_tokens = completion_tokens = 0
        peak_rss = 0
        for (sampling, stop), indices in groups.items():
            indices.sort(key=lambda i: len(texts[i]))
            for b in range(0, len(indices), self.batch_size):
                batch = indices[b:b + self.batch_size]
                rows, p_tok, c_tok = self._generate_batch([texts[i] for i in batch], sampling, stop)
                prompt_tokens += p_tok
                completion_tokens += c_tok
                for i, row in zip(batch, rows):
                    results[i] = [Generation(requests[i].prompt.item_id, j, text, n_prompt, n_new, reason)
                                  for j, (text, n_prompt, n_new, reason) in enumerate(row)]
                peak_rss = max(peak_rss, _rss())
        wall = time.perf_counter() - start
        peak = int(torch.cuda.max_memory_allocated()) if on_gpu else peak_rss
        self.stats.peak_memory_bytes = max(self.stats.peak_memory_bytes or 0, peak)
        self.last_call = self.call_figures(wall, len(requests), max((r.sampling.n for r in requests), default=1),
                                           any(r.sampling.greedy for r in requests), prompt_tokens,
                                           completion_tokens, peak_memory_bytes=peak, batch_size=self.batch_size)
        return results

    def _render(self, request: Request) -> str:
        p = request.prompt
        if p.messages is not None:  # with the thinking switch, as vLLM's chat_template_kwargs
            return self._tok.apply_chat_template(list(p.messages), add_generation_prompt=True, tokenize=False,
                                                 **request.sampling.chat_template_kwargs())
        return p.text or ""

    def _generate_batch(self, texts: list[str], sampling: SamplingConfig,
                        stop: tuple[str, ...]) -> tuple[list[list[tuple[str, int, int, str]]], int, int]:
        """Per prompt, n (text, prompt tokens, new tokens, finish reason); and the batch's token counts."""
        import torch

        enc = self._tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self._lm.device)
        greedy = sampling.greedy
        n = max(1, int(sampling.n))
        kwargs: dict[str, Any] = {"max_new_tokens": int(sampling.max_new_tokens), "pad_token_id": self._tok.pad_token_id}
        if sampling.repetition_penalty is not None:
            kwargs["repetition_penalty"] = float(sampling.repetition_penalty)
        if greedy:
            kwargs["do_sample"] = False
        else:
            # None: the model's generation_config.json (transformers reads it, as vLLM does with --sampling model)
            torch.manual_seed(int(sampling.seed) or self.seed)
            kwargs.update(do_sample=True, num_return_sequences=n)
            for name in ("temperature", "top_p", "top_k", "min_p"):
                value = getattr(sampling, name)
                if value is not None:
                    kwargs[name] = value
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=self._tok)
        with torch.inference_mode():
            out = self._lm.generate(**enc, **kwargs)
        width = enc["input_ids"].shape[1]
        per_prompt = 1 if greedy else n
        eos = self._tok.eos_token_id
        rows: list[list[tuple[str, int, int, str]]] = []
        completion = 0
        for i in range(len(texts)):
            n_prompt = int(enc["attention_mask"][i].sum())
            row = []
            for j in range(per_prompt):
                ids = out[i * per_prompt + j, width:].tolist()
                cut = ids.index(eos) + 1 if eos in ids else len(ids)
                text = self._tok.decode(ids[:cut], skip_special_tokens=True)
                reason = "stop" if eos in ids else "length"
                for s in stop:  # as vLLM does: the text ends before the stop string
                    if s in text:
                        text, reason = text[:text.index(s)], "stop"
                row.append((text, n_prompt, cut, reason))
                completion += cut
            rows.append(row * n if greedy else row)
        return rows, int(enc["attention_mask"].sum()), completion

    def close(self) -> None:
        self._lm = None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
        super().close()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model_path": self.model_path, "device": self._device,
                "dtype": self.stats.extra.get("dtype"), "batch_size": self.batch_size}


def _rss() -> int:
    from .memory import process_tree_rss

    return process_tree_rss()


__all__ = ["HFEngine"]
