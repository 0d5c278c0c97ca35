"""Plans measured on the H100 (bench/memory.py). Each dict: a catalog model, a data format
(for SFT), and Plan fields."""

SMALL = [
    dict(model="Qwen2.5-0.5B", method="full", batch=4, seq_len=1024),
    dict(model="Qwen2.5-0.5B", method="full", precision="mixed", batch=4, seq_len=1024),
    dict(model="Qwen2.5-0.5B", method="lora", batch=8, seq_len=2048),
    dict(model="Qwen2.5-0.5B", method="lora", batch=8, seq_len=2048, grad_ckpt=True),
    dict(model="Qwen2.5-0.5B", method="dora", batch=4, seq_len=1024),
    dict(model="Qwen2.5-0.5B", method="prefix", batch=4, seq_len=1024),
    dict(model="Qwen2.5-0.5B", method="ia3", batch=4, seq_len=1024),
    dict(model="Qwen2.5-0.5B", method="lora", task="dpo", batch=2, seq_len=1024),
    dict(model="Qwen2.5-0.5B", method="full", task="dpo", batch=2, seq_len=1024),
    dict(model="Llama-3.2-1B", method="lora", batch=4, seq_len=2048),
    dict(model="Llama-3.2-1B", method="lora", batch=4, seq_len=2048, loss="chunked"),
    dict(model="Llama-3.2-1B", method="full", batch=4, seq_len=2048, grad_ckpt=True),
    dict(model="Llama-3.2-1B", method="qlora", batch=8, seq_len=2048),
    dict(model="Llama-3.2-1B", method="lora", targets="attention", optim="adamw_8bit", batch=4, seq_len=2048),
    dict(model="Llama-3.2-1B", method="full", optim="paged_adamw_8bit", batch=2, seq_len=4096, grad_ckpt=True),
    dict(model="Llama-3.2-1B", method="lora", batch=1, seq_len=8192, grad_ckpt=True),
    dict(model="Llama-3.2-1B", method="dora", task="dpo", batch=2, seq_len=1024),
    dict(model="Llama-3.2-1B", method="lora", format="messages", batch=4, seq_len=2048, dropout=0.05),
    dict(model="Qwen3-0.6B", method="lora", batch=16, seq_len=512),
    dict(model="Gemma-3-1B", method="lora", batch=4, seq_len=1024),
    dict(model="Pythia-1B", method="lora", batch=4, seq_len=2048),
    dict(model="Pythia-1B", method="full", batch=2, seq_len=2048),
    dict(model="Phi-3-mini-4k", method="lora", batch=2, seq_len=2048, grad_ckpt=True),
    dict(model="Qwen2.5-1.5B", method="lora", batch=4, seq_len=2048, dropout=0.05),
]

LARGE = [
    dict(model="Llama-3.1-8B", method="lora", batch=4, seq_len=2048, grad_ckpt=True, dropout=0.05),
    dict(model="Llama-3.1-8B", method="qlora", batch=4, seq_len=2048, grad_ckpt=True, dropout=0.05),
    dict(model="Llama-3.1-8B", method="lora", batch=1, seq_len=2048),
    dict(model="Llama-3.1-8B", method="full", batch=1, seq_len=2048, grad_ckpt=True),
    dict(model="Llama-3.1-8B", method="full", precision="mixed", batch=1, seq_len=2048, grad_ckpt=True),
    dict(model="Llama-3.1-8B", method="lora", batch=16, seq_len=8192),
    dict(model="Llama-3.1-8B", method="qlora", batch=4, seq_len=2048, optim="paged_adamw_8bit", loss="chunked", grad_ckpt=True),
    dict(model="Llama-3.1-8B", method="lora", task="dpo", batch=2, seq_len=2048, grad_ckpt=True),
    dict(model="Mistral-7B-v0.3", method="lora", batch=4, seq_len=4096, grad_ckpt=True),
]
