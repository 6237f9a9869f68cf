"""Load a generator from an official NVlabs pickle or from the project's own format.

The project's own format is a safetensors file of weights with a JSON file of
the same name beside it (`model.safetensors` + `model.json`) holding
`{"format": "stylegan-generator", "family": "stylegan2", "config": {...}}` (files written
under the format's earlier name are read when the caller lists that name in `formats`).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch

from engine.atomic import atomic_path, write_text_atomic
from engine.errors import CheckpointError
from engine.stylegan2 import Generator, GeneratorConfig, MappingConfig

OWN_FORMAT = "stylegan-generator"
PICKLE_OPCODES = (b"\x80",)  # every pickle of protocol >= 2 starts with PROTO

# Official init arguments this implementation knows how to build; any other
# argument means an architecture variant it would silently get wrong.
_SYNTHESIS_KEYS = {
    "channel_base",
    "channel_max",
    "num_fp16_res",
    "conv_clamp",
    "architecture",
    "resample_filter",
    "use_noise",
    "activation",
    "kernel_size",
}
_IGNORED_KEYS = {"fp16_channels_last", "fused_modconv_default"}  # change speed only, never results


def pick_device(name: str | None = None) -> torch.device:
    """CUDA when present, else CPU; `name` ("cpu", "cuda", "cuda:1", ...) overrides."""
    if name:
        try:
            device = torch.device(name)
        except RuntimeError as err:
            raise CheckpointError(f"unknown device {name!r}; use 'cpu' or 'cuda'.") from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise CheckpointError("CUDA was asked for but no CUDA GPU is available; use the device 'cpu'.")
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise CheckpointError(
                f"there is no {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s); "
                "use cuda:0, or no device to let it be chosen."
            )
        if device.type == "cpu" and device.index not in (None, 0):
            raise CheckpointError(f"there is no {name}: the CPU is one device; use 'cpu'.")
        if device.type not in ("cpu", "cuda"):
            raise CheckpointError(f"{name!r} is not a device models run on here; use 'cpu' or 'cuda'.")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def config_from_init_kwargs(init_kwargs: dict[str, Any]) -> GeneratorConfig:
    """Translate an official `Generator(**init_kwargs)` call into a GeneratorConfig.

    Both layouts occur: stylegan2-ada-pytorch nests synthesis arguments under
    `synthesis_kwargs`; stylegan3 and converted TF pickles keep them flat.
    """

    # A hostile or damaged file can hold anything here: each group must be a dict with string keys.
    def keywords(name: str, group: object) -> None:
        if not (isinstance(group, dict) and all(isinstance(k, str) for k in group)):
            raise CheckpointError(
                f"the checkpoint's generator {name} are not keyword arguments; "
                "the file is damaged or not a StyleGAN2 generator."
            )

    keywords("init_kwargs", init_kwargs)
    for name in ("mapping_kwargs", "synthesis_kwargs"):
        if init_kwargs.get(name) is not None:
            keywords(name, init_kwargs[name])
    kw = dict(init_kwargs)
    mapping_kwargs = dict(kw.pop("mapping_kwargs", None) or {})
    synthesis = dict(kw.pop("synthesis_kwargs", None) or {})
    for key in list(kw):
        if key in _SYNTHESIS_KEYS or key in _IGNORED_KEYS:
            synthesis[key] = kw.pop(key)
    unknown = [
        k
        for k in list(kw) + list(synthesis) + list(mapping_kwargs)
        if k
        not in {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels"}
        | _SYNTHESIS_KEYS
        | _IGNORED_KEYS
        | set(MappingConfig.__dataclass_fields__)
    ]
    if unknown:
        raise CheckpointError(
            f"this StyleGAN2 checkpoint uses arguments that cannot be built yet ({', '.join(sorted(unknown))}); "
            "use a standard StyleGAN2 checkpoint."
        )
    for key in _IGNORED_KEYS:
        synthesis.pop(key, None)
    if synthesis.get("architecture", "skip") not in ("skip", "orig", "resnet"):
        raise CheckpointError(
            f"the StyleGAN2 architecture {synthesis['architecture']!r} cannot be built yet; "
            "use a 'skip', 'orig' or 'resnet' generator."
        )
    cfg = GeneratorConfig(mapping=MappingConfig(**mapping_kwargs), **kw, **synthesis)
    try:
        cfg.validate()
    except ValueError as err:
        raise CheckpointError(
            f"the checkpoint's generator arguments are out of range ({err}); "
            "the file is damaged or not a StyleGAN2 generator."
        ) from None
    return cfg


def _build(cfg: GeneratorConfig, state_dict: dict[str, torch.Tensor], source: Path) -> Generator:
    return _fill(Generator(cfg), state_dict, source, "the generator its config describes")


def _fill(G: Any, state_dict: dict[str, torch.Tensor], source: Path, described: str) -> Any:
    """The generator with the file's tensors, every one of them and nothing else, in eval mode."""
    # A NaN or inf weight renders a garbage picture and drags nowhere, with no error anywhere;
    # it is refused here, once, at load.
    for key, tensor in state_dict.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"{source.name} holds weights that are not finite (NaN or inf in {key}); "
                "the file is damaged, so download or export it again."
            )
    own = G.state_dict()
    wrong = [k for k, v in state_dict.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    if wrong:
        raise CheckpointError(
            f"{source.name} does not fit {described}: {wrong[0]} has the shape "
            f"{tuple(state_dict[wrong[0]].shape)}, not {tuple(own[wrong[0]].shape)}; "
            "the file and its config do not belong together."
        )
    missing, unexpected = G.load_state_dict(state_dict, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{source.name} does not fit {described} "
            f"({len(missing)} missing and {len(unexpected)} unexpected tensors); the file may be damaged."
        )
    return G.eval().requires_grad_(False)


def _load_pickle(path: Path) -> Generator:
    from engine.nvlabs_pickle import read_nvlabs_pickle

    net = read_nvlabs_pickle(path, key="G_ema")
    if net.family == "stylegan3":
        return _build3(net.init_args, net.init_kwargs, net.state_dict, path)
    if net.family != "stylegan2":
        raise CheckpointError(
            f"{path.name} holds a {net.class_name} that is not a StyleGAN2 generator; "
            "use a StyleGAN2 checkpoint (stylegan2-ada-pytorch, stylegan3 or DragGAN)."
        )
    if net.init_args:
        raise CheckpointError(f"{path.name} passes positional arguments to its generator; re-export it with keywords.")
    return _build(config_from_init_kwargs(net.init_kwargs), net.state_dict, path)


def _build3(init_args: Any, init_kwargs: dict[str, Any], state_dict: dict[str, torch.Tensor], source: Path) -> Any:
    """A StyleGAN3 generator from its official init arguments (never from the file name) and weights."""
    from engine.stylegan3 import Generator3, config3_from_init_kwargs

    if init_args:
        raise CheckpointError(
            f"{source.name} passes positional arguments to its generator; re-export it with keywords."
        )
    try:
        cfg = config3_from_init_kwargs(init_kwargs)
        G = Generator3(cfg)
    except (ValueError, TypeError) as err:
        raise CheckpointError(
            f"this StyleGAN3 checkpoint uses arguments that cannot be built ({err}); "
            "use a standard StyleGAN3-T or -R checkpoint."
        ) from None
    return _fill(G, state_dict, source, "the StyleGAN3 generator its init arguments describe")


def _load_own(weights: Path, config_path: Path, formats: Collection[str]) -> Generator:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not config_path.is_file():
        raise CheckpointError(f"{weights.name} needs its config {config_path.name} beside it; copy both files.")
    try:
        meta = json.loads(config_path.read_text())
    except (OSError, ValueError, RecursionError) as err:  # ValueError: bad JSON, bad UTF-8, 5000-digit numbers
        raise CheckpointError(f"{config_path.name} is not valid JSON; restore it from the model's release.") from err
    if not isinstance(meta, dict) or meta.get("format") not in formats:
        raise CheckpointError(f'{config_path.name} is not a generator config (expected "format": "{OWN_FORMAT}").')
    if meta.get("family", "stylegan2") != "stylegan2":
        raise CheckpointError(
            f"{config_path.name} describes a {meta.get('family')} generator, which cannot be built yet."
        )
    try:
        cfg = GeneratorConfig.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(
            f"{config_path.name} has an invalid generator config ({err}); restore it from the model's release."
        ) from err
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{weights.name} is truncated or corrupt; download or copy it again.") from err
    G = _build(cfg, state, weights)
    from engine.drag import DragConfig  # the model's drag settings are checked at load, not mid-edit

    try:
        DragConfig.for_generator(G)
    except (TypeError, ValueError) as err:
        raise CheckpointError(
            f"{config_path.name} has invalid drag settings ({err}); restore it from the model's release."
        ) from None
    return G


def save_generator(G: Generator, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write `path` (.safetensors) and its JSON config beside it."""
    from safetensors.torch import save_file

    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in G.state_dict().items()}
    # Both files are written whole or not at all: an interrupted export keeps the previous model.
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))
    meta = {"format": OWN_FORMAT, "family": "stylegan2", "config": G.cfg.to_dict(), **(extra or {})}
    write_text_atomic(path.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")
    return path


def load_generator(
    path: str | Path, device: str | torch.device | None = None, formats: Collection[str] = (OWN_FORMAT,)
) -> Generator:
    """Read a generator from an official pickle or a .safetensors file with its JSON config (whose
    "format" must be one of `formats`), onto `device`."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; pass the model file itself (.pkl or .safetensors).")
    if not path.is_file():
        raise CheckpointError(f"no model file at {path}; check the path.")
    dev = device if isinstance(device, torch.device) else pick_device(device)
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
        if not path.is_file():
            raise CheckpointError(f"no weights {path.name} beside the config; copy both files.")
    with path.open("rb") as fh:
        head = fh.read(8)
    if not head:
        raise CheckpointError(f"{path.name} is empty; download or copy it again.")
    if path.suffix == ".safetensors":
        G = _load_own(path, path.with_suffix(".json"), formats)
    elif head.startswith(PICKLE_OPCODES):
        G = _load_pickle(path)
    elif zipfile.is_zipfile(path):
        raise CheckpointError(
            f"{path.name} is a torch.save archive, not an NVlabs network pickle; give an official .pkl "
            "snapshot or a .safetensors generator with its JSON config."
        )
    else:
        raise CheckpointError(
            f"{path.name} is neither an NVlabs network pickle nor a .safetensors generator; pass one of those."
        )
    return G.to(dev)
