"""What a backend needs to know: the model, the prompt format, the variants and the cluster settings.

A :class:`BackendSpec` is the whole contract between the run lifecycle and the replicas:
the executor (:mod:`harness.distributed.executor`) reads nothing else, so ``harness run``,
``harness rank`` and any script can open a backend without building a run plan.

Example:
    >>> from harness.experts.variants import parse_variants
    >>> spec = BackendSpec(model_path="/models/m", model_name="m", prompt_format="tulu",
    ...                    variants=tuple(parse_variants(["none", "rules"])), no_ray=True)
    >>> spec.engine, spec.batch_size, [v.name for v in spec.variants]
    ('hf', 8, ['none', 'rules'])
    >>> spec.worker_kwargs(threads=2, device="cpu")["prompt_format"]
    'tulu'
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.records import DecodingParams


@dataclass(frozen=True)
class BackendSpec:
    """The model and cluster settings of one backend (typed; no run config, no plan).

    Attributes:
        model_path / model_name: the resolved local model directory and its display name.
        prompt_format: how instructions are rendered (:mod:`harness.prompts`).
        variants: the variants the run uses (their experts are resolved once per replica).
        engine: ``hf`` or ``vllm`` (already chosen; ``auto`` is resolved by the caller).
        decoding: the default decoding of ``run`` when a caller passes none.
        batch_size: prompts per generate call (HF static batch; vLLM's step is its own).
        dtype / device / combine / trace: passed to every engine.
        no_ray: run one in-process worker instead of Ray replicas.
        address / num_cpus / replicas / threads / tp: where and how many replicas run.
    """

    model_path: str
    model_name: str
    prompt_format: str
    variants: tuple = ()
    engine: str = "hf"
    decoding: DecodingParams = DecodingParams()
    batch_size: int = 8
    dtype: str = "float32"
    device: str = "auto"
    combine: str = "logit-add"
    trace: bool = False
    no_ray: bool = False
    address: str | None = None
    num_cpus: int | None = None
    replicas: str = "1"
    threads: int | None = None
    tp: int = 1

    @classmethod
    def from_run(cls, cfg, model, prompt_format: str, variants, engine: str = "hf") -> BackendSpec:
        """The spec of a run config (:class:`~harness.run.config.RunConfig`) and its resolved model."""
        return cls(model_path=str(model.path), model_name=model.name, prompt_format=prompt_format,
                   variants=tuple(variants), engine=engine, decoding=cfg.decoding, batch_size=cfg.batch_size,
                   dtype=cfg.dtype, device=cfg.device, combine=cfg.combine, trace=cfg.trace, no_ray=cfg.no_ray,
                   address=cfg.address, num_cpus=cfg.num_cpus, replicas=str(cfg.replicas), threads=cfg.threads,
                   tp=int(cfg.tp))

    def worker_kwargs(self, threads: int | None, device: str) -> dict:
        """Keyword arguments of :class:`~harness.distributed.worker.ModelWorker` (and the TP ranks)."""
        kwargs = dict(model_name=self.model_name, prompt_format=self.prompt_format, dtype=self.dtype, device=device,
                      combine=self.combine, threads=threads, trace=self.trace, engine=self.engine)
        if self.engine == "vllm" and self.tp > 1:
            kwargs["tp"] = self.tp  # vLLM shards the model over the replica's own GPUs
        return kwargs
