"""The checkpoint in the ecosystem's format: ``config.json`` + ``model.safetensors``.

``transformers.GPT2LMHeadModel.from_pretrained(DIR)`` loads the directory offline,
and with the tokenizer files copied beside it ``transformers.pipeline(
"text-generation", model=DIR)`` works. The traps, each handled here:

- transformers' GPT-2 keeps attention and MLP weights in ``Conv1D`` layout
  (in × out), the transpose of ``nn.Linear``: ``c_attn``, ``c_proj`` (attention
  and MLP) and ``c_fc`` are transposed on the way out and back in.
- It expects biases everywhere: a model trained without them gets zeros.
- ``lm_head.weight`` is tied to ``transformer.wte.weight``: written once.
- It must not receive causal-mask buffers (``….attn.bias``/``….attn.masked_bias``
  in older checkpoints); note that the real parameter ``….attn.c_attn.bias`` also
  ends in ``attn.bias``, so mask buffers are matched by their last two name parts.
- A ``torch.compile``d model's keys carry an ``_orig_mod.`` prefix (DDP adds
  ``module.``): stripped.

No transformers import here; the tests load the result with transformers.
"""

from __future__ import annotations

import json
import os
import shutil

import torch
from safetensors.torch import load_file, save_file

from webtext_pipeline.train.config import ModelConfig
from webtext_pipeline.train.model import GPT

CONV1D_SUFFIXES = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight",
                   "mlp.c_proj.weight")
_MASK_BUFFERS = ("bias", "masked_bias")
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json",
                   "special_tokens_map.json")
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def strip_wrappers(key: str) -> str:
    """``_orig_mod.transformer.h.0…`` → ``transformer.h.0…`` (torch.compile, DDP)."""
    parts = [p for p in key.split(".") if p not in ("_orig_mod", "module")]
    return ".".join(parts)


def is_mask_buffer(key: str) -> bool:
    """A causal-mask buffer (``h.0.attn.bias``), not the parameter ``h.0.attn.c_attn.bias``."""
    parts = key.split(".")
    return len(parts) >= 2 and parts[-2] == "attn" and parts[-1] in _MASK_BUFFERS


def to_hf_state_dict(state_dict: dict[str, torch.Tensor], config: ModelConfig
                     ) -> dict[str, torch.Tensor]:
    """Our (possibly compiled) state dict → transformers GPT2LMHeadModel tensors (fp32, CPU)."""
    out: dict[str, torch.Tensor] = {}
    for raw_key, value in state_dict.items():
        key = strip_wrappers(raw_key)
        if is_mask_buffer(key) or key == "lm_head.weight":
            continue
        tensor = value.detach().to("cpu", torch.float32)
        if key.endswith(CONV1D_SUFFIXES):
            tensor = tensor.t()
        out[key] = tensor.contiguous()
    d = config.n_embd
    zeros = {  # every bias transformers expects, zero when trained without
        "ln_1.bias": d, "ln_2.bias": d, "attn.c_attn.bias": 3 * d, "attn.c_proj.bias": d,
        "mlp.c_fc.bias": 4 * d, "mlp.c_proj.bias": d,
    }
    for layer in range(config.n_layer):
        for name, size in zeros.items():
            out.setdefault(f"transformer.h.{layer}.{name}", torch.zeros(size))
    out.setdefault("transformer.ln_f.bias", torch.zeros(d))
    return out


def from_hf_state_dict(tensors: dict[str, torch.Tensor], config: ModelConfig
                       ) -> dict[str, torch.Tensor]:
    """transformers GPT-2 tensors → our state dict (drops zero biases for bias-free configs)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        key = strip_wrappers(key)
        if is_mask_buffer(key) or key == "lm_head.weight":
            continue
        if not config.bias and key.endswith(".bias"):
            continue
        out[key] = value.t().contiguous() if key.endswith(CONV1D_SUFFIXES) else value
    out["lm_head.weight"] = out["transformer.wte.weight"]
    return out


def hf_config(config: ModelConfig, eot_id: int, webtext: dict | None = None) -> dict:
    """config.json for transformers' GPT2LMHeadModel; our own settings under ``webtext``."""
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.padded_vocab_size,
        "n_positions": config.block_size,
        "n_ctx": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None,
        "activation_function": "gelu_new",
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "layer_norm_epsilon": config.layer_norm_epsilon,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "use_cache": True,
        "bos_token_id": eot_id,
        "eos_token_id": eot_id,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "webtext": {"model_config": config.to_dict(), "eot_id": eot_id, **(webtext or {})},
    }


def _readable(path: str) -> None:
    """safetensors creates files 0600; give them the usual umask-based mode."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def _write_json(path: str, data: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=False)
        handle.write("\n")
    os.replace(tmp, path)


def _eot_token(tokenizer_json: str, eot_id: int) -> str:
    with open(tokenizer_json, encoding="utf-8") as handle:
        spec = json.load(handle)
    for added in spec.get("added_tokens", []):
        if added.get("id") == eot_id:
            return added["content"]
    for token, index in (spec.get("model", {}).get("vocab") or {}).items():
        if index == eot_id:
            return token
    return "<|endoftext|>"


def copy_tokenizer(tokenizer_dir: str, model_dir: str, eot_id: int, block_size: int) -> list[str]:
    """Copy the tokenizer files beside the weights; write a tokenizer_config.json if absent."""
    if not os.path.isfile(os.path.join(tokenizer_dir, "tokenizer.json")):
        raise FileNotFoundError(f"{tokenizer_dir}: no tokenizer.json")
    copied = []
    for name in TOKENIZER_FILES:
        source = os.path.join(tokenizer_dir, name)
        if os.path.isfile(source):
            shutil.copyfile(source, os.path.join(model_dir, name))
            copied.append(name)
    if "tokenizer_config.json" not in copied:
        eot = _eot_token(os.path.join(tokenizer_dir, "tokenizer.json"), eot_id)
        _write_json(os.path.join(model_dir, "tokenizer_config.json"), {
            "tokenizer_class": "GPT2Tokenizer",
            "bos_token": eot, "eos_token": eot, "unk_token": eot,
            "add_prefix_space": False,
            "model_max_length": block_size,
        })
        copied.append("tokenizer_config.json")
    return copied


def save_pretrained(model: torch.nn.Module | dict, config: ModelConfig, model_dir: str,
                    eot_id: int, tokenizer_dir: str | None = None,
                    webtext: dict | None = None) -> list[str]:
    """Write config.json, model.safetensors (and tokenizer files); return the names written."""
    os.makedirs(model_dir, exist_ok=True)
    state = model if isinstance(model, dict) else model.state_dict()
    tensors = to_hf_state_dict(state, config)
    weights = os.path.join(model_dir, WEIGHTS_NAME)
    save_file(tensors, weights + ".tmp", metadata={"format": "pt"})
    _readable(weights + ".tmp")
    os.replace(weights + ".tmp", weights)
    _write_json(os.path.join(model_dir, CONFIG_NAME), hf_config(config, eot_id, webtext))
    _write_json(os.path.join(model_dir, "generation_config.json"), {
        "bos_token_id": eot_id, "eos_token_id": eot_id, "pad_token_id": eot_id,
    })
    written = [CONFIG_NAME, WEIGHTS_NAME, "generation_config.json"]
    if tokenizer_dir:
        written += copy_tokenizer(tokenizer_dir, model_dir, eot_id, config.block_size)
    return written


def read_config(model_dir: str) -> tuple[ModelConfig, dict]:
    """(our ModelConfig, the whole config.json) from an exported directory."""
    path = os.path.join(model_dir, CONFIG_NAME)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: missing (not a trained model directory)") from None
    ours = data.get("webtext", {}).get("model_config")
    if ours:
        return ModelConfig.from_dict(ours), data
    return ModelConfig(  # a plain GPT-2 config.json written by someone else
        vocab_size=data["vocab_size"], block_size=data["n_positions"], n_layer=data["n_layer"],
        n_head=data["n_head"], n_embd=data["n_embd"],
        layer_norm_epsilon=data.get("layer_norm_epsilon", 1e-5), vocab_multiple=1,
    ), data


def load_pretrained(model_dir: str, device: str | torch.device = "cpu") -> tuple[GPT, dict]:
    """Our GPT from an exported directory (the inverse of ``save_pretrained``)."""
    config, data = read_config(model_dir)
    path = os.path.join(model_dir, WEIGHTS_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: missing")
    model = GPT(config)
    model.load_state_dict(from_hf_state_dict(load_file(path), config), strict=True)
    return model.to(device).eval(), data
