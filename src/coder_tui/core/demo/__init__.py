"""The demo: a tiny synthetic MoE model, its tokenizer, and a config to try it with."""
