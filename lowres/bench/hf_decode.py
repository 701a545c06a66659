"""Hugging Face transformers `generate` at the same sizes as `lowres bench decode`, with random weights.

Runs in its own interpreter (torch and transformers are benchmark-only, kept out of lowres' environment):
    python -m lowres.bench.hf_decode '{"architecture": ..., "batch": ..., ...}'
and prints one JSON line {"seconds": median seconds per generate call, "new_tokens": per row}.
"""

from __future__ import annotations

import json
import statistics
import sys
import time


def _model(spec: dict):
    import transformers

    if spec["architecture"] == "encoder_decoder":
        config = transformers.T5Config(
            vocab_size=spec["vocab_size"], d_model=spec["d_model"], d_kv=spec["head_dim"], d_ff=spec["d_ff"],
            num_layers=spec["num_encoder_layers"], num_decoder_layers=spec["num_decoder_layers"],
            num_heads=spec["num_heads"], feed_forward_proj="gated-gelu", dropout_rate=0.0,
            tie_word_embeddings=False, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
        )
        return transformers.T5ForConditionalGeneration(config)
    config = transformers.LlamaConfig(
        vocab_size=spec["vocab_size"], hidden_size=spec["d_model"], intermediate_size=spec["d_ff"],
        num_hidden_layers=spec["num_layers"], num_attention_heads=spec["num_heads"],
        num_key_value_heads=spec["num_kv_heads"], head_dim=spec["head_dim"], pad_token_id=0, eos_token_id=1,
        bos_token_id=0, tie_word_embeddings=False,
    )
    return transformers.LlamaForCausalLM(config)


def main(spec: dict) -> dict:
    import torch
    import transformers

    torch.manual_seed(0)
    model = _model(spec).eval()
    inputs = torch.randint(3, spec["vocab_size"], (spec["batch"], spec["prompt_length"]))
    kwargs = dict(max_new_tokens=spec["new_tokens"], min_new_tokens=spec["new_tokens"], do_sample=False,
                  num_beams=1, use_cache=spec["use_cache"], attention_mask=torch.ones_like(inputs))
    times = []
    with torch.inference_mode():
        model.generate(inputs, **kwargs)  # warm-up
        for _ in range(spec["repeats"]):
            start = time.perf_counter()
            out = model.generate(inputs, **kwargs)
            times.append(time.perf_counter() - start)
    new = out.shape[1] - (0 if spec["architecture"] == "encoder_decoder" else spec["prompt_length"])
    if spec["architecture"] == "encoder_decoder":
        new -= 1  # the decoder start token
    return {"seconds": statistics.median(times), "new_tokens": int(new), "torch": torch.__version__,
            "transformers": transformers.__version__}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
