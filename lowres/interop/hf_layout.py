"""How lowres models and Hugging Face `transformers` models correspond: configs and weight names.

Encoder-decoders are T5.1.1 / mT5 (`T5ForConditionalGeneration`): gated MLP, one relative-position
bias table per stack (held by block 0), queries unscaled (T5 folds 1/sqrt(d_kv) into their init, as
lowres does). Decoder-only models are Llama (`LlamaForCausalLM`): RoPE rotating feature pairs
(i, i + head_dim/2) with inverse frequencies theta^(-2i/head_dim), which is both lowres's layout and
the layout of HF Llama checkpoints, so no permutation is needed; grouped-query heads in the same
order (query head h reads K/V head h // group).

Everything here is NumPy on flat dicts: lowres parameters keyed "a/b/c" as `nnx.to_pure_dict`
paths, HF tensors keyed by their state-dict names. Every transform is a transpose or reshape, so a
round trip gives back the same bits. Scanned decoder stacks (`scan_layers`) hold a leading layer axis.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from lowres.errors import ConfigError, DataError
from lowres.models.config import DecoderOnlyConfig, EncoderDecoderConfig

# lowres activation <-> HF activation names (lowres's gelu is the tanh approximation, HF's gelu_new).
_T5_ACTIVATIONS = {"gelu": "gated-gelu", "silu": "gated-silu"}
_LLAMA_ACTIVATIONS = {"silu": "silu", "gelu": "gelu_pytorch_tanh"}
_LLAMA_ACTIVATIONS_IN = {"silu": "silu", "gelu_pytorch_tanh": "gelu", "gelu_new": "gelu"}
# Llama-layout families: same names, shapes and maths (Mistral adds an optional sliding window).
LLAMA_MODEL_TYPES = ("llama", "mistral")
T5_MODEL_TYPES = ("t5", "mt5")
PAD_ID, EOS_ID = 0, 1  # lowres (T5) layout: seqio pads with 0, appends 1, and starts decoding from 0


class NotRepresentable(ConfigError):
    """A model setting one side cannot express exactly."""


# ----------------------------------------------------------------------------------------------- configs


def hf_config(config: EncoderDecoderConfig | DecoderOnlyConfig, max_length: int, eos_id: int = EOS_ID) -> dict[str, Any]:
    """The `config.json` of the HF model equal to a lowres model (`NotRepresentable` if none is).

    `max_length`: the longest sequence the run trained on, recorded as Llama's max_position_embeddings
    (RoPE itself extrapolates; the field only bounds some HF code paths).
    """
    if config.norm != "pre":
        raise NotRepresentable(
            f"ModelConfig.norm={config.norm!r}: HF T5 and Llama put every norm before its branch (Pre-LN); "
            "a Post-LN, Mix-LN or LayerNorm-Scaling model has no exact HF equivalent"
        )
    if isinstance(config, EncoderDecoderConfig):
        return {
            "architectures": ["T5ForConditionalGeneration"],
            "model_type": "t5",
            "vocab_size": config.vocab_size,
            "d_model": config.d_model,
            "d_kv": config.head_dim,
            "d_ff": config.d_ff,
            "num_layers": config.num_encoder_layers,
            "num_decoder_layers": config.num_decoder_layers,
            "num_heads": config.num_heads,
            "relative_attention_num_buckets": config.relative_attention_num_buckets,
            "relative_attention_max_distance": config.relative_attention_max_distance,
            "dropout_rate": config.dropout_rate,
            "layer_norm_epsilon": config.norm_eps,
            "feed_forward_proj": _T5_ACTIVATIONS[config.activation],
            # transformers 4 reads tie_word_embeddings as "tied and scaled by d_model**-0.5"; transformers 5
            # always ties unless the file holds a different lm_head, and scales by scale_decoder_outputs.
            "tie_word_embeddings": config.tie_embeddings,
            "scale_decoder_outputs": config.tie_embeddings and config.scale_tied_logits,
            "is_encoder_decoder": True,
            "pad_token_id": PAD_ID,
            "eos_token_id": eos_id,
            "decoder_start_token_id": PAD_ID,
            "torch_dtype": "float32",
            "use_cache": True,
        }
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": config.vocab_size,
        "hidden_size": config.d_model,
        "intermediate_size": config.d_ff,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "num_key_value_heads": config.num_kv_heads,
        "head_dim": config.head_dim,
        "hidden_act": _LLAMA_ACTIVATIONS[config.activation],
        "max_position_embeddings": max_length,
        "rms_norm_eps": config.norm_eps,
        # transformers 5 reads rope_parameters, 4.x reads rope_theta.
        "rope_theta": config.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": config.rope_theta},
        "tie_word_embeddings": config.tie_embeddings,
        "attention_bias": False,
        "mlp_bias": False,
        "attention_dropout": config.dropout_rate,
        # Sequences start with id 0 (seqio's shifted decoder input), end with 1.
        "bos_token_id": PAD_ID,
        "eos_token_id": eos_id,
        "pad_token_id": PAD_ID,
        "torch_dtype": "float32",
        "use_cache": True,
    }


def lowres_config(hf: Mapping[str, Any], weights: Mapping[str, np.ndarray], where: str
                  ) -> EncoderDecoderConfig | DecoderOnlyConfig:  # fmt: skip
    """The lowres config of an HF `config.json` and its weights (`where` names it in errors).

    Whether the head is tied is read off the weights (no `lm_head.weight`, or one equal to the
    embedding), since transformers 5 saves T5 with tie_word_embeddings=true whatever it means to do.
    """
    model_type = hf.get("model_type")
    if model_type == "umt5":
        raise NotRepresentable(f"{where}: umT5 gives every layer its own relative-position bias; lowres shares one "
                               "table per stack (T5 / mT5). Convert a T5 or mT5 checkpoint instead")  # fmt: skip
    embedding = weights.get("shared.weight", weights.get("model.embed_tokens.weight"))
    head = weights.get("lm_head.weight")
    tied = head is None or (embedding is not None and np.array_equal(head, embedding))
    if model_type in T5_MODEL_TYPES:
        return _t5_config(hf, tied, where)
    if model_type in LLAMA_MODEL_TYPES:
        return _llama_config(hf, tied, where)
    if model_type == "qwen2":
        raise NotRepresentable(f"{where}: Qwen2 attention has q/k/v biases; lowres attention has none. Llama and "
                               "Mistral checkpoints import exactly")  # fmt: skip
    raise NotRepresentable(
        f"{where}: model_type {model_type!r} is not importable; lowres imports {', '.join(T5_MODEL_TYPES)} "
        f"(encoder-decoder) and {', '.join(LLAMA_MODEL_TYPES)} (decoder-only)"
    )


def _require(hf: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in hf:
        raise DataError(f"{where} lacks {key!r}; is it a transformers config.json?")
    return hf[key]


def _t5_config(hf: Mapping[str, Any], tied: bool, where: str) -> EncoderDecoderConfig:
    projection = hf.get("feed_forward_proj", "relu")
    activation = {v: k for k, v in _T5_ACTIVATIONS.items()}.get(projection)
    if activation is None:
        raise NotRepresentable(f"{where}: feed_forward_proj={projection!r}; lowres models use a gated MLP "
                               "(T5.1.1 and mT5: 'gated-gelu' or 'gated-silu'), not T5 1.0's")  # fmt: skip
    num_layers = int(_require(hf, "num_layers", where))
    # T5: scaled when transformers 5's scale_decoder_outputs (or 4's tie_word_embeddings) says so; mT5's
    # released checkpoints are untied, and transformers 5 never scales mT5 outputs.
    scaled = hf.get("model_type") == "t5" and bool(hf.get("scale_decoder_outputs", hf.get("tie_word_embeddings", True)))
    if scaled and not tied:
        raise NotRepresentable(f"{where}: an untied head with decoder outputs scaled by d_model**-0.5; lowres scales "
                               "only a tied head")  # fmt: skip
    return EncoderDecoderConfig(
        vocab_size=int(_require(hf, "vocab_size", where)),
        d_model=int(_require(hf, "d_model", where)),
        num_heads=int(_require(hf, "num_heads", where)),
        head_dim=int(_require(hf, "d_kv", where)),
        d_ff=int(_require(hf, "d_ff", where)),
        num_encoder_layers=num_layers,
        num_decoder_layers=int(hf.get("num_decoder_layers") or num_layers),
        relative_attention_num_buckets=int(hf.get("relative_attention_num_buckets", 32)),
        relative_attention_max_distance=int(hf.get("relative_attention_max_distance", 128)),
        activation=activation,
        tie_embeddings=tied,
        scale_tied_logits=scaled,
        norm_eps=float(hf.get("layer_norm_epsilon", 1e-6)),
    )


def _llama_config(hf: Mapping[str, Any], tied: bool, where: str) -> DecoderOnlyConfig:
    for flag in ("attention_bias", "mlp_bias"):
        if hf.get(flag):
            raise NotRepresentable(f"{where}: {flag}=true; lowres layers have no biases")
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        raise NotRepresentable(f"{where}: rope type {rope_type!r} (scaled RoPE); lowres implements plain RoPE")
    activation = _LLAMA_ACTIVATIONS_IN.get(hf.get("hidden_act", "silu"))
    if activation is None:
        raise NotRepresentable(f"{where}: hidden_act={hf.get('hidden_act')!r}; lowres gates with silu or tanh-gelu")
    d_model, num_heads = int(_require(hf, "hidden_size", where)), int(_require(hf, "num_attention_heads", where))
    return DecoderOnlyConfig(
        vocab_size=int(_require(hf, "vocab_size", where)),
        d_model=d_model,
        num_heads=num_heads,
        num_kv_heads=int(hf.get("num_key_value_heads") or num_heads),
        head_dim=int(hf.get("head_dim") or d_model // num_heads),
        d_ff=int(_require(hf, "intermediate_size", where)),
        num_layers=int(_require(hf, "num_hidden_layers", where)),
        activation=activation,
        rope_theta=float(rope.get("rope_theta", hf.get("rope_theta", 10000.0))),
        tie_embeddings=tied,
        norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        scale_tied_logits=False,
    )


# ----------------------------------------------------------------------------------------------- weights


@dataclasses.dataclass(frozen=True)
class Tensor:
    """One HF tensor and the lowres parameter it is (`to_hf` / `from_hf` convert between the layouts)."""

    hf_name: str
    lowres_name: str
    to_hf: Callable[[np.ndarray], np.ndarray]
    from_hf: Callable[[np.ndarray], np.ndarray]


def _same(name: str, lowres: str) -> Tensor:
    return Tensor(name, lowres, lambda x: x, lambda x: x)


def _transposed(name: str, lowres: str) -> Tensor:
    return Tensor(name, lowres, lambda x: x.T, lambda x: x.T)


def _heads_in(name: str, lowres: str, heads: int, head_dim: int) -> Tensor:
    """lowres [d, heads, head_dim] <-> HF Linear weight [heads * head_dim, d]."""
    return Tensor(name, lowres, lambda x: x.reshape(x.shape[0], heads * head_dim).T,
                  lambda x: x.T.reshape(x.shape[1], heads, head_dim))  # fmt: skip


def _heads_out(name: str, lowres: str, heads: int, head_dim: int) -> Tensor:
    """lowres [heads, head_dim, d] <-> HF Linear weight [d, heads * head_dim]."""
    return Tensor(name, lowres, lambda x: x.reshape(heads * head_dim, x.shape[-1]).T,
                  lambda x: x.T.reshape(heads, head_dim, x.shape[0]))  # fmt: skip


def _attention(hf_prefix: str, lowres_prefix: str, names: tuple[str, str, str, str], heads: int, kv_heads: int,
               head_dim: int) -> list[Tensor]:  # fmt: skip
    q, k, v, o = names
    return [
        _heads_in(f"{hf_prefix}.{q}.weight", f"{lowres_prefix}/query", heads, head_dim),
        _heads_in(f"{hf_prefix}.{k}.weight", f"{lowres_prefix}/key", kv_heads, head_dim),
        _heads_in(f"{hf_prefix}.{v}.weight", f"{lowres_prefix}/value", kv_heads, head_dim),
        _heads_out(f"{hf_prefix}.{o}.weight", f"{lowres_prefix}/out", heads, head_dim),
    ]


def _mlp(hf_prefix: str, lowres_prefix: str, names: tuple[str, str, str]) -> list[Tensor]:
    gate, up, down = names
    return [
        _transposed(f"{hf_prefix}.{gate}.weight", f"{lowres_prefix}/wi_0"),
        _transposed(f"{hf_prefix}.{up}.weight", f"{lowres_prefix}/wi_1"),
        _transposed(f"{hf_prefix}.{down}.weight", f"{lowres_prefix}/wo"),
    ]


def tensors(config: EncoderDecoderConfig | DecoderOnlyConfig) -> list[Tensor]:
    """Every tensor of the HF model, in state-dict order, with its lowres parameter (per-layer names;
    `to_hf_weights` / `from_hf_weights` handle scanned stacks)."""
    heads, head_dim = config.num_heads, config.head_dim
    if isinstance(config, EncoderDecoderConfig):
        t5_attention = ("q", "k", "v", "o")
        t5_mlp = ("wi_0", "wi_1", "wo")
        out = [_same("shared.weight", "token_embed/embedding")]
        for i in range(config.num_encoder_layers):
            hf, lr = f"encoder.block.{i}", f"encoder/layers/{i}"
            out += _attention(f"{hf}.layer.0.SelfAttention", f"{lr}/attention", t5_attention, heads, heads, head_dim)
            if i == 0:
                out.append(_same(f"{hf}.layer.0.SelfAttention.relative_attention_bias.weight",
                                 "encoder/relative_bias/embedding"))  # fmt: skip
            out.append(_same(f"{hf}.layer.0.layer_norm.weight", f"{lr}/pre_attention_norm/scale"))
            out += _mlp(f"{hf}.layer.1.DenseReluDense", f"{lr}/mlp", t5_mlp)
            out.append(_same(f"{hf}.layer.1.layer_norm.weight", f"{lr}/pre_mlp_norm/scale"))
        out.append(_same("encoder.final_layer_norm.weight", "encoder/final_norm/scale"))
        for i in range(config.num_decoder_layers):
            hf, lr = f"decoder.block.{i}", f"decoder/layers/{i}"
            out += _attention(f"{hf}.layer.0.SelfAttention", f"{lr}/self_attention", t5_attention, heads, heads,
                              head_dim)  # fmt: skip
            if i == 0:
                out.append(_same(f"{hf}.layer.0.SelfAttention.relative_attention_bias.weight",
                                 "decoder/relative_bias/embedding"))  # fmt: skip
            out.append(_same(f"{hf}.layer.0.layer_norm.weight", f"{lr}/pre_self_attention_norm/scale"))
            out += _attention(f"{hf}.layer.1.EncDecAttention", f"{lr}/cross_attention", t5_attention, heads, heads,
                              head_dim)  # fmt: skip
            out.append(_same(f"{hf}.layer.1.layer_norm.weight", f"{lr}/pre_cross_attention_norm/scale"))
            out += _mlp(f"{hf}.layer.2.DenseReluDense", f"{lr}/mlp", t5_mlp)
            out.append(_same(f"{hf}.layer.2.layer_norm.weight", f"{lr}/pre_mlp_norm/scale"))
        out.append(_same("decoder.final_layer_norm.weight", "decoder/final_norm/scale"))
    else:
        out = [_same("model.embed_tokens.weight", "token_embed/embedding")]
        for i in range(config.num_layers):
            hf, lr = f"model.layers.{i}", f"layers/{i}"
            out += _attention(f"{hf}.self_attn", f"{lr}/attention", ("q_proj", "k_proj", "v_proj", "o_proj"), heads,
                              config.num_kv_heads, head_dim)  # fmt: skip
            out += _mlp(f"{hf}.mlp", f"{lr}/mlp", ("gate_proj", "up_proj", "down_proj"))
            out.append(_same(f"{hf}.input_layernorm.weight", f"{lr}/attention_norm/scale"))
            out.append(_same(f"{hf}.post_attention_layernorm.weight", f"{lr}/mlp_norm/scale"))
        out.append(_same("model.norm.weight", "final_norm/scale"))
    if not config.tie_embeddings:
        out.append(_transposed("lm_head.weight", "logits_kernel"))
    return out


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested parameter dict (`nnx.to_pure_dict`) as {"a/b/c": leaf}."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        flat.update(flatten(value, name + "/") if isinstance(value, Mapping) else {name: value})
    return flat


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of `flatten`; integer path parts (layer indices) become int keys, as nnx uses."""
    tree: dict[Any, Any] = {}
    for name, value in flat.items():
        node = tree
        *parents, leaf = [int(p) if p.isdigit() else p for p in name.split("/")]
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def _per_layer(config, flat: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A scanned decoder's stacked "layers/x" [L, ...] as "layers/i/x"; other configs unchanged."""
    if not getattr(config, "scan_layers", False):
        return dict(flat)
    out = {}
    for name, value in flat.items():
        if name.startswith("layers/"):
            out.update({f"layers/{i}/{name[7:]}": value[i] for i in range(config.num_layers)})
        else:
            out[name] = value
    return out


def _stacked(config, flat: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inverse of `_per_layer`."""
    if not getattr(config, "scan_layers", False):
        return dict(flat)
    out, layered = {}, {}
    for name, value in flat.items():
        if name.startswith("layers/"):
            index, rest = name[7:].split("/", 1)
            layered.setdefault(rest, {})[int(index)] = value
        else:
            out[name] = value
    for rest, by_index in layered.items():
        out[f"layers/{rest}"] = np.stack([by_index[i] for i in range(config.num_layers)])
    return out


def to_hf_weights(config, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """lowres parameters (nested, as `nnx.to_pure_dict`) -> HF state dict of contiguous NumPy arrays.

    A tied Llama head without lowres's d_model**-0.5 logit scale: the scale is folded into the final
    norm's weight (exact up to one rounding of each weight).
    """
    flat = _per_layer(config, {k: np.asarray(v) for k, v in flatten(params).items()})
    out = {t.hf_name: np.ascontiguousarray(t.to_hf(flat[t.lowres_name])) for t in tensors(config)}
    if isinstance(config, DecoderOnlyConfig) and config.tie_embeddings and config.scale_tied_logits:
        norm = out["model.norm.weight"]
        out["model.norm.weight"] = (norm * np.asarray(config.d_model**-0.5, norm.dtype)).astype(norm.dtype)
    return out


def from_hf_weights(config, weights: Mapping[str, np.ndarray], where: str) -> dict[str, Any]:
    """HF state dict -> lowres parameters (nested, as `nnx.to_pure_dict`), checked against `config`."""
    expected = tensors(config)
    aliases = {"shared.weight": ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")}
    flat, missing = {}, []
    for tensor in expected:
        names = (tensor.hf_name, *aliases.get(tensor.hf_name, ()))
        found = next((weights[name] for name in names if name in weights), None)
        if found is None:
            missing.append(tensor.hf_name)
            continue
        flat[tensor.lowres_name] = np.asarray(tensor.from_hf(np.asarray(found)))
    if missing:
        raise DataError(f"{where} lacks {len(missing)} tensor(s) the config implies, e.g. {missing[:3]}")
    known = {t.hf_name for t in expected} | {a for names in aliases.values() for a in names}
    if config.tie_embeddings:
        known.add("lm_head.weight")  # some writers store the tied head too
    unknown = sorted(name for name in weights if name not in known and not name.endswith("rotary_emb.inv_freq"))
    if unknown:
        raise NotRepresentable(f"{where} holds tensors lowres has no place for, e.g. {unknown[:3]} "
                               "(biases, or per-layer position biases?)")  # fmt: skip
    return unflatten(_stacked(config, flat))
